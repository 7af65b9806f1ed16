"""Live reload of [[strategies]] on a running node: adding, removing, enabling, disabling
and re-parameterizing apply all-or-nothing; a bad config is rejected naming the field and
changes nothing; what an hmm strategy cannot take live is restart_required, naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nautilus_hmm import bootstrap
from tests.nodeharness import client, running_node, write_config

TREND = '[[strategies]]\nid = "trend"\nkind = "sma_cross"\ninstruments = ["sim:BTCUSDT"]\n'
BREAK = '[[strategies]]\nid = "break"\nkind = "breakout"\ninstruments = ["sim:BTCUSDT", "sim:ETHUSDT"]\n'
REVERT = '[[strategies]]\nid = "revert"\nkind = "mean_reversion"\ninstruments = ["sim:SOLUSDT"]\n'


def snapshot(node: Any) -> tuple[Any, ...]:
    st = node.stack
    return (dict(st.strategies), dict(st.instances), st.router.strategy_ids(),
            {sid: st.router.state(sid) for sid in st.router.strategy_ids()}, node.config.hash)


async def test_adding_a_strategy_builds_attaches_and_routes_it(tmp_path: Path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch, TREND + BREAK) as (node, url):
        trend = node.stack.strategies["trend"]
        write_config(tmp_path, TREND + BREAK + REVERT)
        r = node.reload("test")
        assert r.result == "applied" and r.changed == ["strategies"]
        assert list(node.stack.strategies) == ["trend", "break", "revert"]
        assert node.stack.strategies["trend"] is trend  # untouched strategies keep their object
        assert node.stack.router.strategy_ids() == ["trend", "break", "revert"]
        assert node.stack.router.state("revert") == "active"
        async with client() as s, s.get(f"{url}/strategies") as resp:
            rows = (await resp.json())["strategies"]
        assert [row["strategy_id"] for row in rows] == ["trend", "break", "revert"]


async def test_disabling_and_removing_reach_the_router(tmp_path: Path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch, TREND + BREAK) as (node, _url):
        write_config(tmp_path, TREND.replace('kind = "sma_cross"\n', 'kind = "sma_cross"\nenabled = false\n') + BREAK)
        assert node.reload("test").result == "applied"
        assert node.stack.router.state("trend") == "disabled"
        write_config(tmp_path, BREAK)
        assert node.reload("test").result == "applied"
        assert list(node.stack.strategies) == ["break"] and node.stack.router.strategy_ids() == ["break"]


async def test_live_params_go_to_the_running_object_and_windows_rebuild_it(tmp_path: Path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch, TREND) as (node, _url):
        trend = node.stack.strategies["trend"]
        write_config(tmp_path, TREND + "[strategies.sma_cross]\nexposure = 0.25\n")
        assert node.reload("test").result == "applied"
        assert node.stack.strategies["trend"] is trend and trend.exposure == 0.25  # type: ignore[attr-defined]
        write_config(tmp_path, TREND + "[strategies.sma_cross]\nexposure = 0.25\nfast = 5\n")
        assert node.reload("test").result == "applied"
        rebuilt = node.stack.strategies["trend"]
        assert rebuilt is not trend and rebuilt.fast == 5  # type: ignore[attr-defined]


async def test_an_instrument_on_a_disabled_venue_rejects_the_whole_reload(tmp_path: Path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch, TREND) as (node, _url):
        before = snapshot(node)
        bad = REVERT.replace('"sim:SOLUSDT"', '"sim:SOLUSDT", "binance_spot:SOLUSDT"')
        write_config(tmp_path, TREND + BREAK + bad)
        r = node.reload("test")
        assert r.result == "invalid"
        assert r.errors == ["strategies[2].instruments[1] = \"binance_spot:SOLUSDT\": venue 'binance_spot' "
                            "is not enabled"]
        assert snapshot(node) == before


async def test_a_strategy_that_fails_to_build_applies_none_of_the_reload(tmp_path: Path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch, TREND) as (node, _url):
        before = snapshot(node)
        real = bootstrap.build_strategy

        def failing(inst: Any, hmm: Any) -> Any:
            if inst.id == "revert":
                raise ValueError("mean_reversion.window = 20: cannot build (test)")
            return real(inst, hmm)

        monkeypatch.setattr(bootstrap, "build_strategy", failing)
        write_config(tmp_path, TREND.replace("[[strategies]]\n", "[[strategies]]\nweight = 2.0\n") + BREAK + REVERT
                     + "[risk]\nmax_order_notional_usd = 123.0\n")
        r = node.reload("test")
        assert r.result == "failed" and "strategies[2].mean_reversion.window" in r.errors[0]
        assert snapshot(node) == before  # break was built, not attached; trend's weight not applied
        assert node.stack.gate.config.max_order_notional_usd == 50_000.0


@pytest.mark.parametrize("change, named", [
    ('[[strategies]]\nid = "regime"\nkind = "hmm"\ninstruments = ["sim:BTCUSDT"]\n',
     "strategies[1] (id 'regime'): adding an hmm strategy needs a restart"),
])
async def test_adding_an_hmm_strategy_needs_a_restart(tmp_path: Path, monkeypatch, change: str, named: str) -> None:
    async with running_node(tmp_path, monkeypatch, TREND) as (node, _url):
        before = snapshot(node)
        write_config(tmp_path, TREND + change)
        r = node.reload("test")
        assert r.result == "restart_required" and r.restart_required == [named]
        assert snapshot(node) == before


async def test_a_strategy_added_by_a_reload_gets_capital_at_once(tmp_path: Path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch, TREND + BREAK) as (node, _url):
        assert node.stack.router.share("revert") == 0.0
        write_config(tmp_path, TREND + BREAK + REVERT.replace("[[strategies]]\n", "[[strategies]]\nmin_share = 0.2\n"))
        assert node.reload("test").result == "applied"
        assert node.stack.router.share("revert") >= 0.2 and node.stack.router.capital_usd("revert") > 0
        assert abs(sum(node.plane.allocation_view()["shares"].values()) - 1.0) < 1e-9
