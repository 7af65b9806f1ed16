"""GET /equity: `since` parsing, the journal's equity samples (thinned, damaged rows
skipped, kept across a restart) and the route's answers to bad input."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from nautilus_hmm.journal.rows import EquitySampleRow
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.web.equity import SinceError, equity_document, parse_since
from tests.nodeharness import client, running_node

S = 1_000_000_000


# ------------------------------------------------------------------ since


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0),
    ("1796306400", 1_796_306_400 * S),
    ("1796306400.5", 1_796_306_400 * S + S // 2),
    (" 1796306400 ", 1_796_306_400 * S),
    ("2026-12-03T14:00:00Z", 1_796_306_400 * S),
    ("2026-12-03T14:00:00", 1_796_306_400 * S),  # no offset: UTC
    ("2026-12-03T15:00:00+01:00", 1_796_306_400 * S),
    ("2026-12-03 14:00:00.000001+00:00", 1_796_306_400 * S + 1000),
    ("2026-12-03", 1_796_256_000 * S),
    ("1970-01-01T00:00:00Z", 0),
])
def test_since_accepts_iso_8601_and_epoch_seconds(text: str, ns: int) -> None:
    assert parse_since(text) == ns


@pytest.mark.parametrize("text", [
    "", " ", "abc", "yesterday", "-1", "nan", "inf", "-inf", "1e20", "253402300800",
    "1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z", "2026-12-03T25:00:00Z", "0001-01-01T00:00:00+01:00",
    "1796306400;DROP TABLE fills",
])
def test_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(SinceError):
        parse_since(text)


# ------------------------------------------------------------------ journal read


def _snapshot(equity: str, peak: str, dd: str, currency: str = "USDT") -> dict[str, Any]:
    return {"base_currency": currency, "equity": equity, "peak_equity": peak, "drawdown_pct": dd, "positions": []}


async def _journal_with(path: Path, n: int) -> Journal:
    j = Journal.open(path)
    for i in range(n):
        j.record_position_snapshot((i + 1) * S, _snapshot(str(1000 + i), str(1000 + i), "0"))
    await j.flush()
    return j


async def test_samples_since_a_time_oldest_first(tmp_path: Path) -> None:
    j = await _journal_with(tmp_path / "j.sqlite3", 10)
    try:
        rows = j.equity_samples(since_ns=7 * S)
    finally:
        j.close()
    assert [r.ts_ns for r in rows] == [7 * S, 8 * S, 9 * S, 10 * S]
    assert rows[0].equity == "1006" and rows[0].currency == "USDT"


async def test_samples_are_thinned_evenly_and_keep_the_newest(tmp_path: Path) -> None:
    j = await _journal_with(tmp_path / "j.sqlite3", 1000)
    try:
        rows = j.equity_samples(max_points=7)
        all_rows = j.equity_samples(max_points=5000)
    finally:
        j.close()
    assert len(all_rows) == 1000
    assert len(rows) <= 8 and rows[0].ts_ns == 1 * S and rows[-1].ts_ns == 1000 * S
    gaps = {b.ts_ns - a.ts_ns for a, b in itertools.pairwise(rows[:-1])}
    assert len(gaps) == 1  # evenly spaced, the newest added at the end


async def test_damaged_snapshot_rows_are_left_out_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = await _journal_with(path, 4)
    try:
        with sqlite3.connect(path) as db:  # damage the table the way a bad disk or a hand edit would
            db.execute("UPDATE position_snapshots SET data = ? WHERE ts_ns = ?", ('{"equity": "10', 2 * S))
            db.execute("UPDATE position_snapshots SET data = ? WHERE ts_ns = ?",
                       (orjson.dumps({"positions": []}).decode(), 3 * S))
        rows = j.equity_samples()
    finally:
        j.close()
    assert [r.ts_ns for r in rows] == [1 * S, 4 * S]


def test_rows_with_unparseable_numbers_or_another_currency_are_counted_not_served() -> None:
    rows = [EquitySampleRow(1, "100.5", "101", "0.49", "USDT"), EquitySampleRow(2, "NaN", "101", "0", "USDT"),
            EquitySampleRow(3, "abc", "101", "0", "USDT"), EquitySampleRow(4, "99", "101", "1.98", "USDC"),
            EquitySampleRow(5, "99", "98", "0", "")]  # a peak below equity is shown as the equity
    current = {"equity": "99.00000000", "peak_equity": "101.00000000", "drawdown_pct": "1.9802"}
    doc = equity_document(rows, "USDT", current, since_ns=0, now_ns=9)
    assert doc["skipped"] == 3
    assert doc["samples"] == [
        {"ts_ns": 1, "equity": "100.50000000", "peak_equity": "101.00000000", "drawdown_pct": "0.4900"},
        {"ts_ns": 5, "equity": "99.00000000", "peak_equity": "99.00000000", "drawdown_pct": "0.0000"},
    ]
    assert doc["current"] == {"ts_ns": 9, **current}


# ------------------------------------------------------------------ route


async def test_equity_route_serves_journaled_samples_and_the_current_value(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        clock = node.clock
        for _ in range(3):
            node.stack.engine.record_snapshot()
            clock.advance(60.0)
        await node.stack.journal.flush()
        async with s.get(url + "/equity") as r:
            assert r.status == 200
            doc = await r.json()
        t0 = doc["samples"][0]["ts_ns"]
        async with s.get(url + f"/equity?since={(t0 + 60 * S) // S}") as r:
            later = await r.json()
        async with s.get(url + "/equity?points=2") as r:
            thinned = await r.json()
    assert doc["currency"] == "USDT" and len(doc["samples"]) == 3 and doc["skipped"] == 0
    assert doc["samples"][0]["equity"] == "100000.00000000" and doc["samples"][0]["drawdown_pct"] == "0.0000"
    assert doc["current"]["equity"] == "100000.00000000" and doc["current"]["ts_ns"] > doc["samples"][-1]["ts_ns"]
    assert [x["ts_ns"] for x in later["samples"]] == [x["ts_ns"] for x in doc["samples"][1:]]
    assert thinned["samples"][-1] == doc["samples"][-1] and len(thinned["samples"]) <= 3


async def test_equity_survives_a_restart(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        node.stack.engine.record_snapshot()
        await node.stack.journal.flush()
    async with running_node(tmp_path, monkeypatch) as (_node, url), client() as s, s.get(url + "/equity") as r:
        doc = await r.json()
    assert len(doc["samples"]) >= 1


BAD_QUERIES = [
    ("since=abc", "since = 'abc'"),
    ("since=-5", "since = '-5'"),
    ("since=2026-02-30T00:00:00Z", "since = '2026-02-30T00:00:00Z'"),
    ("since=", "since = ''"),
    ("since=nan", "since = 'nan'"),
    ("points=1", "points = 1"),
    ("points=x", "points = 'x'"),
    ("points=100000", "points = 100000"),
]


async def test_bad_query_is_400_naming_the_value(tmp_path, monkeypatch) -> None:
    answers = []
    async with running_node(tmp_path, monkeypatch) as (_node, url), client() as s:
        for query, _ in BAD_QUERIES:
            async with s.get(url + "/equity?" + query) as r:
                answers.append((r.status, (await r.json())["error"]))
        async with s.get(url + "/health") as r:
            assert r.status == 200  # still serving
    for (query, named), (status, message) in zip(BAD_QUERIES, answers, strict=True):
        assert status == 400 and message.startswith(named), (query, status, message)


async def test_a_closed_journal_is_503_not_a_traceback(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        await node.stack.journal.aclose()  # as while the daemon stops
        async with s.get(url + "/equity") as r:
            assert r.status == 503
            assert "journal cannot be read" in (await r.json())["error"]
