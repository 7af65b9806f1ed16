"""/positions, /orders and /fills over HTTP: one documented type per field (OpenAPI), every
decimal a fixed-notation string."""

from __future__ import annotations

import re

from tests.nodeharness import client, running_node

FIXED = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


async def test_openapi_declares_the_trading_view_fields_as_decimal_strings(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.get(url + "/openapi.json") as r:
            doc = await r.json()
    body = doc["paths"]["/positions"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    pnl = body["properties"]["pnl"]["properties"]
    position = body["properties"]["positions"]["items"]["properties"]
    for field in ("equity", "peak_equity", "drawdown_pct", "realized_pnl", "day_realized_pnl", "gross_exposure"):
        assert pnl[field]["type"] == "string" and "pattern" in pnl[field], field
    for field in ("qty", "avg_px", "realized_pnl", "unrealized_pnl", "fees", "exposure"):
        assert position[field]["type"] == "string", field
    orders = doc["paths"]["/orders"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert orders["properties"]["orders"]["items"]["properties"]["filled_qty"]["type"] == "string"
    fills = doc["paths"]["/fills"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert fills["properties"]["fills"]["items"]["properties"]["fee"]["type"] == "string"


async def test_positions_pnl_fields_are_fixed_notation_strings(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.get(url + "/positions") as r:
            doc = await r.json()
    pnl = doc["pnl"]
    for field in ("equity", "peak_equity", "drawdown_pct", "realized_pnl", "unrealized_pnl", "fees",
                  "day_realized_pnl", "gross_exposure"):
        assert isinstance(pnl[field], str) and FIXED.match(pnl[field]), (field, pnl[field])
    assert all(FIXED.match(v) for v in pnl["cash"].values())
