"""sim_exec replay throughput on the Binance websocket captures, against the bar replay.

Prints, per capture: events, parse time, tick replay events/s with no strategy and with a
quoting strategy (QuoteBothSides: one limit each side at the touch, so queue position,
cancels and partial fills are exercised); then the bar replay (the sim venue's
MatchingEngine.on_bar_values over a month of 1m klines, two resting limits re-placed as
they fill) in bars/s, and the ratios.

Then the node's strategies on ticks (research.tick_backtest, `research sim-exec --config`):
the two-strategy config research/configs/ticks_two_strategies.toml (SMA cross + breakout on
5 s bars built from the trades, router, allocator, risk gate, engine, orders matched by the
tick venue) over each capture, in events/s (parse excluded), against the bar backtest of the
same config (`backtest.Backtest`: the same stack, a month of 1 m klines) in bars/s. A
figure, not a test.

    .venv/bin/python benchmarks/sim_exec_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import time
from decimal import Decimal
from pathlib import Path

from nautilus_hmm.backtest import Backtest
from nautilus_hmm.config import load_config
from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.marketdata.replay import load_bars
from nautilus_hmm.research.sim_exec import QuoteBothSides, SimExecConfig, TickSim
from nautilus_hmm.research.tick_backtest import TickBacktest, load_ticks
from nautilus_hmm.research.ticks import QUOTE, load_capture
from nautilus_hmm.venues.sim.instruments import sim_instrument
from nautilus_hmm.venues.sim.matching import MatchingEngine

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "marketdata"
CAPTURES = FIXTURES / "binance_ws_captures_hftbacktest"
KLINES = FIXTURES / "binance_spot_klines_1m" / "BTCUSDT_1m_2025-03.csv"
TWO = Path(__file__).resolve().parents[1] / "research" / "configs" / "ticks_two_strategies.toml"


def tick_rate(path: Path, repeat: int) -> tuple[int, float, float, float, int, float]:
    """(events, parse s, events/s bare, events/s quoting, fills, span s)."""
    t = time.perf_counter()
    events = load_capture(path)
    parse_s = time.perf_counter() - t
    symbol = path.name.split("_")[1].upper()
    first_quote = next(e for e in events if e[1] == QUOTE)
    inst = sim_instrument("bench", symbol, "USDT", Decimal("0.0002"), Decimal("0.001"), ref_price=first_quote[2])
    step = float(inst.step_size)
    qty = max(step, round(20.0 / first_quote[2], max(0, round(-math.log10(step)))))  # ~20 USDT a quote
    bare, quoting, fills = [], [], 0
    for _ in range(repeat):
        r = TickSim(inst, SimExecConfig()).run(events)
        bare.append(r.events / r.wall_s)
        r = TickSim(inst, SimExecConfig()).run(events, QuoteBothSides(qty, float(inst.tick_size), step=step))
        quoting.append(r.events / r.wall_s)
        fills = len(r.fills)
    span_s = (events[-1][0] - events[0][0]) / 1e9
    return len(events), parse_s, max(bare), max(quoting), fills, span_s


def bar_rate(repeat: int) -> tuple[int, float]:
    """(bars, bars/s) of the sim venue's bar matching with two resting limits."""
    bars = load_bars(KLINES)
    inst = sim_instrument("bench", "BTCUSDT", "USDT", Decimal("0.0002"), Decimal("0.001"))
    rates = []
    cols = (bars.ts_open_ns.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
            bars.close.tolist(), bars.volume.tolist())
    for _ in range(repeat):
        eng = MatchingEngine(inst, venue="bench", bar_volume_fraction=0.1)
        n = 0
        t = time.perf_counter()
        for ts, o, h, lo, c, v in zip(*cols, strict=True):
            eng.on_bar_values(ts, o, h, lo, c, v)
            if len(eng.open_orders()) < 2:
                for side, px in ((Side.BUY, c * 0.999), (Side.SELL, c * 1.001)):
                    n += 1
                    price = (Decimal(repr(px)) / inst.tick_size).to_integral_value() * inst.tick_size
                    eng.accept(OrderRequest(f"b{n}", inst.id, side, OrderType.LIMIT, Decimal("0.001"), price), ts)
        rates.append(len(bars) / (time.perf_counter() - t))
    return len(bars), max(rates)


def _config(symbol: str, tmp: Path) -> object:
    """The two-strategy config, trading `symbol`."""
    p = tmp / f"two_{symbol}.toml"
    p.write_text(TWO.read_text().replace("BTCUSDT", symbol))
    return load_config(p)


def strategies_on_ticks(path: Path, repeat: int, tmp: Path) -> tuple[int, float, int, int, int]:
    """(events, best events/s, bars, engine fills, venue rejections) of the config on one capture."""
    symbol = path.name.split("_")[1].upper()
    cfg = _config(symbol, tmp)
    events, bars = load_ticks([path], 5)
    rates, fills, n_bars, rejected = [], 0, 0, 0
    for _ in range(repeat):
        tb = TickBacktest(cfg, bars, events)  # type: ignore[arg-type]
        res, _ = tb.run()
        rates.append(tb.n_events / res.wall_s)
        fills, n_bars, rejected = res.fills, res.bars, tb.tick_venue.rejected
    return sum(len(v) for v in events.values()), max(rates), n_bars, fills, rejected


def bar_backtest_rate(repeat: int, tmp: Path) -> tuple[int, float]:
    """(bars, best bars/s) of the same config through the bar backtest, a month of 1 m klines."""
    cfg = _config("BTCUSDT", tmp)
    data = load_bars(KLINES)
    rates = []
    for _ in range(repeat):
        res, _ = Backtest(cfg, data).run()  # type: ignore[arg-type]
        rates.append(res.bars_per_s)
    return len(data), max(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    args = ap.parse_args()
    n_bars, bars_per_s = bar_rate(args.repeat)
    print(f"bar replay (MatchingEngine.on_bar_values, {KLINES.name}): {n_bars} bars, {bars_per_s:,.0f} bars/s")
    print(f"{'capture':28} {'events':>7} {'span s':>7} {'parse s':>7} {'bare ev/s':>10} {'quoting ev/s':>12} "
          f"{'fills':>6} {'ratio':>6} {'sim s / real s':>14}")
    for path in sorted(CAPTURES.glob("*.gz")):
        n, parse_s, bare, quoting, fills, span = tick_rate(path, args.repeat)
        ratio = quoting / bars_per_s
        print(f"{path.name:28} {n:7d} {span:7.0f} {parse_s:7.2f} {bare:10,.0f} {quoting:12,.0f} {fills:6d} "
              f"{ratio:6.2f} {n / quoting / span:14.4f}")
    print("ratio = tick events/s (quoting) / bars/s; sim s / real s = replay time per second of market "
          "(parse excluded)")
    import logging
    import tempfile

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        n_bt, bt_rate = bar_backtest_rate(args.repeat, tmp)
        print(f"\nstrategies ({TWO.name}): bar backtest (backtest.Backtest, {KLINES.name}): {n_bt} bars, "
              f"{bt_rate:,.0f} bars/s")
        print(f"{'capture':28} {'events':>7} {'bars 5s':>7} {'fills':>6} {'refused':>7} {'ticks ev/s':>10} "
              f"{'ratio':>6} {'sim s / real s':>14}")
        for path in sorted(CAPTURES.glob("*.gz")):
            n, rate, bars, fills, refused = strategies_on_ticks(path, args.repeat, tmp)
            span = bars * 5
            print(f"{path.name:28} {n:7d} {bars:7d} {fills:6d} {refused:7d} {rate:10,.0f} {rate / bt_rate:6.2f} "
                  f"{n / rate / span:14.4f}")
    print("ratio = strategies-on-ticks events/s / bar-backtest bars/s (the same config and engine stack)")


if __name__ == "__main__":
    main()
