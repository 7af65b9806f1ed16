"""`nautilus-hmm emulator bybit`: the command line, and the emulator as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import signal
import sys

import aiohttp
import numpy as np
import pytest

from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.venues.bybit.emulator.cli import _balances, build_parser
from nautilus_hmm.venues.bybit.emulator.exchange import BybitExchange

T0_NS = 1_750_000_000 * 10**9
START_S = 30.0  # bound on the child's start (an import-heavy process); it answers at once after
_LISTENING = re.compile(r"listening: rest (http://127\.0\.0\.1:\d+) ws_public (ws://\S+)/\{spot,linear\} "
                        r"ws_private (ws://\S+) ws_trade (ws://\S+)")


def test_command_line_takes_the_documented_options() -> None:
    args = build_parser().parse_args(["--port", "18765", "--api-key", "k", "--api-secret", "s", "--symbols",
                                      "btcusdt", "ETHUSDT", "--replay", "f.csv", "--seed", "3", "--balance",
                                      "USDT=5"])
    assert (args.port, args.symbols, args.replay, args.seed, args.balance) == (
        18765, ["BTCUSDT", "ETHUSDT"], "f.csv", 3, ["USDT=5"])


@pytest.mark.parametrize("argv, named", [
    (["--symbols", "BTC-USD"], "'BTC-USD'"),
    (["--port", "70000"], "'70000'"),
    (["--tick-interval", "0"], "'0'"),
])
def test_bad_arguments_are_usage_errors_naming_the_value(argv, named, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--api-key", "k", "--api-secret", "s", *argv])
    assert exc.value.code == 2 and named in capsys.readouterr().err


def test_bad_balance_argument_names_itself() -> None:
    with pytest.raises(SystemExit, match="USDT=lots"):
        _balances(["USDT=lots"])


def test_replayed_bars_drive_the_first_symbol_in_both_categories() -> None:
    closes = np.array([100.0, 101.5, 99.25])
    bars = BarArrays(np.array([0, 60, 120], dtype=np.int64) * 10**9, closes, closes + 1, closes - 1, closes,
                     np.array([1.0, 2.0, 3.0]), 60)
    ex = BybitExchange(["SOLUSDT", "ETHUSDT"], replay=bars, start_ns=T0_NS)
    topics = {("spot", "publicTrade.SOLUSDT"), ("linear", "publicTrade.SOLUSDT")}
    prices: dict[str, list[float]] = {"spot": [], "linear": []}
    for i in range(3):
        for c, _topic, frame in ex.tick(T0_NS + i * 10**9, topics).public:
            prices[c].append(float(frame["data"][0]["p"]))
    assert prices == {"spot": [100.0, 101.5, 99.25], "linear": [100.0, 101.5, 99.25]}


async def test_the_emulator_runs_as_a_process_answers_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nautilus_hmm", "emulator", "bybit", "--port", "0", "--api-key", "k",
        "--api-secret", "s", "--symbols", "BTCUSDT", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        seen = ""
        match = None
        while match is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), START_S)).decode()
            assert line, f"emulator exited early: {seen}"
            seen += line
            match = _LISTENING.search(line)
        url = match.group(1)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/v5/market/instruments-info", params={"category": "linear"}) as r:
                body = await r.json()
            assert body["retCode"] == 0 and [i["symbol"] for i in body["result"]["list"]] == ["BTCUSDT"]
            async with s.ws_connect(match.group(2) + "/spot") as ws:
                await ws.send_str('{"op": "ping", "req_id": "cli"}')
                assert (await ws.receive_json(timeout=START_S))["ret_msg"] == "pong"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), START_S) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(Exception):
                await proc.wait()


def test_market_time_scale_closes_a_one_minute_kline_every_wall_second() -> None:
    ex = BybitExchange(["BTCUSDT"], start_ns=T0_NS, market_time_scale=60.0)
    ex.want_kline("linear", "BTCUSDT", "1")
    topics = {("linear", "kline.1.BTCUSDT")}
    closed = []
    for i in range(1, 11):  # 5 s of wall time at 2 ticks a second
        out = ex.tick(T0_NS + i * 500_000_000, topics)
        closed += [f["data"][0]["start"] for _c, _t, f in out.public if f["data"][0]["confirm"]]
    assert len(closed) in (4, 5) and all(b - a == 60_000 for a, b in itertools.pairwise(closed))
    # Orders and fills stay on the wall clock.
    _, frames = ex.create_order({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
                                 "qty": "0.001"}, T0_NS + 5 * 10**9)
    (execution,) = [f for topic, f in frames if topic == "execution"]
    assert execution["data"][0]["execTime"] == str((T0_NS + 5 * 10**9) // 1_000_000)


def test_market_time_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="market_time_scale"):
        BybitExchange(["BTCUSDT"], market_time_scale=0)
