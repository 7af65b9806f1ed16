"""The node's strategies on ticks (research.tick_backtest): the configured strategies, router,
risk gate and engine run over a tick replay; the bars are the daemon's bar builder's; the
orders meet the recorded book (latency, depth, partial fills, maker fills), not the bar open;
the bar backtest of the same bars makes the same decisions."""

from __future__ import annotations

import gzip
import io
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.backtest import Backtest
from nautilus_hmm.config import load_config
from nautilus_hmm.config.schema import Config
from nautilus_hmm.domain.enums import Liquidity, OrderStatus, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import StrategyTarget
from nautilus_hmm.research.sim_exec import SimExecConfig
from nautilus_hmm.research.tick_backtest import (
    TickBacktest,
    bars_from_trades,
    compare_runs,
    decision_rows,
    load_ticks,
    run_ticks,
)
from nautilus_hmm.research.ticks import DEPTH, SNAPSHOT, TRADE, CaptureError, load_by_symbol

CAPTURES = Path("/work/shared/fixtures/marketdata/binance_ws_captures_hftbacktest")
NS = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * NS
IID = InstrumentId("sim", "BTCUSDT")

RISK = """
[risk]
orders_per_s = 1000.0
order_burst = 1000
daily_loss_limit_usd = 1e12
max_drawdown_pct = 100.0
max_order_notional_usd = 1e12
max_symbol_exposure_usd = 1e12
max_gross_exposure_usd = 1e13
"""

SIM = """
[venues.sim]
symbols = ["BTCUSDT"]
initial_balances = { USDT = 100000.0 }
maker_fee = 0.0002
taker_fee = 0.001

[venues.sim.market]
bar_interval_s = BAR
initial_prices = { BTCUSDT = 60000.0 }
"""

# Two strategies through the router and the allocator (exposure sizing), 2 s bars.
TWO = SIM.replace("BAR", "2") + """
[[strategies]]
id = "trend"
kind = "sma_cross"
instruments = ["sim:BTCUSDT"]
bar_interval_s = 2

[strategies.sma_cross]
fast = 3
slow = 8
exposure = 0.5

[[strategies]]
id = "breakout"
kind = "breakout"
instruments = ["sim:BTCUSDT"]
bar_interval_s = 2

[strategies.breakout]
lookback = 10
exit_lookback = 5
exposure = 0.5
""" + RISK

# One fixed-size SMA(1/2) on 1 s bars: closes 100, 99, 100 cross up -> long QTY at bar 2's close.
ONE = SIM.replace("BAR", "1") + """
[strategy]
kind = "sma_cross"
instruments = ["sim:BTCUSDT"]
bar_interval_s = 1

[strategy.sma_cross]
fast = 1
slow = 2
quantity = "QTY"
""" + RISK


def cfg_of(tmp_path: Path, text: str, name: str = "cfg.toml") -> Config:
    p = tmp_path / name
    p.write_text(text)
    return load_config(p)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60 s of a real Binance spot capture (trades, best quotes, depth, REST snapshot)."""
    lines = gzip.decompress((CAPTURES / "spot_btcusdt_20240808.gz").read_bytes()).split(b"\n")
    t0 = int(lines[0].split(b" ", 1)[0])
    keep = [ln for ln in lines if ln and int(ln.split(b" ", 1)[0]) <= t0 + 60 * NS]
    out = tmp_path_factory.mktemp("cap") / "spot_btcusdt_60s.gz"
    out.write_bytes(gzip.compress(b"\n".join(keep) + b"\n"))
    return out


@pytest.fixture(scope="module")
def real_run(capture: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TickBacktest, Backtest, dict]:
    """The two-strategy config over the real capture, on ticks and on the same bars."""
    cfg = cfg_of(tmp_path_factory.mktemp("cfg"), TWO)
    events, bars = load_ticks([capture], 2)
    tb = TickBacktest(cfg, bars, events)
    tres, _ = tb.run()
    bb = Backtest(cfg, bars)
    bb.targets = []  # type: ignore[attr-defined]
    bb.bus.subscribe(StrategyTarget, bb.targets.append)  # type: ignore[attr-defined]
    bres, _ = bb.run()
    comparison, _ = compare_runs(bb, bres, tb, tres)
    return tb, bb, comparison


# ---------------------------------------------------------------- the real capture


def test_the_same_config_makes_the_same_decisions_on_ticks_as_on_bars(real_run) -> None:
    tb, bb, comparison = real_run
    d = comparison["decisions"]
    assert d["ticks"] >= 4, "the slice must make the strategies decide (else the test shows nothing)"
    assert d["identical"] and d["first_difference"] is None
    assert decision_rows(tb.targets) == decision_rows(bb.targets)


def test_bars_published_on_ticks_are_the_bar_builders_bars(real_run, capture: Path) -> None:
    tb, _, _ = real_run
    events = load_by_symbol(capture)["BTCUSDT"]
    expected = bars_from_trades(events, 2)
    seen = tb.bars_seen
    assert len(seen) == len(expected) == len(tb.series["BTCUSDT"]) > 20
    assert [b.ts_event_ns for b in seen] == expected.ts_open_ns.tolist()
    assert [(b.open, b.high, b.low, b.close, b.volume) for b in seen] == list(zip(
        expected.open.tolist(), expected.high.tolist(), expected.low.tolist(), expected.close.tolist(),
        expected.volume.tolist(), strict=True))
    # each bar reaches the strategies when the trade that closed it was received (after its close)
    assert all(b.ts_init_ns >= b.ts_event_ns + 2 * NS for b in seen)


def test_engine_books_agree_with_the_tick_venue(real_run) -> None:
    tb, _, _ = real_run
    eng = tb.stack.engine
    assert tb.fills and not eng.discrepancies
    assert all(o.status.is_terminal for o in eng.orders.values()) and tb.tick_summary()["orders_open_at_end"] == 0
    step = eng.instruments[IID].step_size
    assert all(f.qty % step == 0 and f.qty > 0 for f in tb.fills)
    signed = sum((f.qty if f.side is Side.BUY else -f.qty for f in tb.fills), Decimal(0))
    assert tb.stack.portfolio.position_qty(IID) == signed
    venue_bal = tb.tick_venue.balances_nowait()
    assert venue_bal["BTC"].total == signed
    assert float(venue_bal["USDT"].total) == pytest.approx(float(tb.stack.portfolio.cash["USDT"]), abs=1e-6)


def test_tick_fills_differ_from_bar_open_fills_and_are_reported_per_decision(real_run) -> None:
    tb, bb, comparison = real_run
    fv = comparison["fills_vs_bar_open"]
    assert fv["matched_legs"] >= 2
    tick_prices = {f.price for f in tb.fills}
    bar_prices = {f.price for f in bb.fills}
    assert tick_prices != bar_prices
    # a tick fill is at its decision's bar close or later, never at the bar's open time
    assert all(f.ts_event_ns % (2 * NS) != 0 for f in tb.fills)


# ---------------------------------------------------------------- a book the bar open does not see


def book_events(depth_after_ms: int | None = None, asks: tuple = ((101.0, 0.02), (102.0, 10.0))) -> list:
    """A snapshot (bid 99, the given asks), then one trade per second at 100, 99, 100, 100, 100, 100:
    the SMA(1/2) decides at bar 2's close (published with the trade at 3.1 s); bar 3 opens at 100."""
    evs: list = [(T0, SNAPSHOT, [(99.0, 5.0)], list(asks))]
    for i, px in enumerate((100.0, 99.0, 100.0, 100.0, 100.0, 100.0)):
        evs.append((T0 + i * NS + 100 * MS, TRADE, px, 0.5, False))
    if depth_after_ms is not None:  # the asks move away before a slow order arrives
        evs.append((T0 + 3 * NS + 100 * MS + depth_after_ms * MS, DEPTH, [], [(101.0, 0.0), (102.0, 0.0), (103.0, 5.0)]))
    evs.sort(key=lambda e: e[0])
    return evs


def run_both(cfg: Config, events: list, latency_ms: float = 5.0) -> tuple[TickBacktest, Backtest, dict]:
    bars = {"BTCUSDT": bars_from_trades(events, 1)}
    sim = SimExecConfig(int(latency_ms * MS), int(latency_ms * MS), 0.0002, 0.001)
    tb = TickBacktest(cfg, bars, {"BTCUSDT": events}, sim)
    tres, _ = tb.run()
    bb = Backtest(cfg, bars)
    bb.targets = []  # type: ignore[attr-defined]
    bb.bus.subscribe(StrategyTarget, bb.targets.append)  # type: ignore[attr-defined]
    bres, _ = bb.run()
    return tb, bb, compare_runs(bb, bres, tb, tres)[0]


def test_a_market_order_walks_the_recorded_book_where_the_bar_backtest_fills_at_the_open(tmp_path: Path) -> None:
    tb, bb, comp = run_both(cfg_of(tmp_path, ONE.replace("QTY", "0.1")), book_events())
    assert [(f.qty, f.price) for f in bb.fills] == [(Decimal("0.1"), Decimal("100"))]  # bar 3's open
    assert [(f.qty, f.price, f.liquidity) for f in tb.fills] == [
        (Decimal("0.02"), Decimal("101"), Liquidity.TAKER), (Decimal("0.08"), Decimal("102"), Liquidity.TAKER)]
    assert [f.fee for f in tb.fills] == [Decimal("0.00202"), Decimal("0.00816")]  # qty x price x taker 0.001
    assert comp["decisions"]["identical"] and comp["decisions"]["ticks"] == 1
    assert comp["fills_vs_bar_open"]["mean_bps"] == pytest.approx((101.8 / 100 - 1) * 1e4)
    # sent when the trade closing bar 2 arrived (3.1 s), filled on arrival 5 ms later
    assert tb.fills[0].ts_event_ns == T0 + 3 * NS + 105 * MS


@pytest.mark.parametrize(("latency_ms", "price"), [(5, None), (50, Decimal("103"))])
def test_entry_latency_decides_which_book_the_order_meets(tmp_path: Path, latency_ms: int,
                                                        price: Decimal | None) -> None:
    tb, _, _ = run_both(cfg_of(tmp_path, ONE.replace("QTY", "0.1")), book_events(depth_after_ms=20), latency_ms)
    if price is None:  # arrives before the asks move
        assert [f.price for f in tb.fills] == [Decimal("101"), Decimal("102")]
    else:  # arrives after: the asks moved to 103
        assert [(f.qty, f.price) for f in tb.fills] == [(Decimal("0.1"), price)]


def test_a_thin_book_fills_partially_the_remainder_expires_and_the_periodic_replan_buys_the_rest(
        tmp_path: Path) -> None:
    evs = book_events(asks=((101.0, 0.03),))
    evs.append((T0 + 4 * NS + 500 * MS, DEPTH, [], [(101.5, 1.0)]))  # sellers come back at 4.5 s
    evs.sort(key=lambda e: e[0])
    tb, _, _ = run_both(cfg_of(tmp_path, ONE.replace("QTY", "0.1")), evs)
    first, again = tb.stack.engine.orders.values()
    assert first.status is OrderStatus.EXPIRED and first.filled_qty == Decimal("0.03")
    assert "book depth exhausted" in first.reason
    # the daemon's every-5-s re-plan (TradingStarter.run) at T0 + 5 s: the 0.07 still missing
    assert again.reason == "replan" and again.created_ns == T0 + 5 * NS
    assert again.status is OrderStatus.FILLED and again.filled_qty == Decimal("0.07")
    assert [(f.qty, f.price) for f in tb.fills] == [(Decimal("0.03"), Decimal("101")), (Decimal("0.07"), Decimal("101.5"))]
    assert tb.stack.portfolio.position_qty(IID) == Decimal("0.1") and tb.tick_summary()["replan_orders"] == 1
    assert not tb.stack.engine.discrepancies


def test_an_order_the_account_cannot_pay_is_refused_by_the_venue(tmp_path: Path) -> None:
    tb, _, _ = run_both(cfg_of(tmp_path, ONE.replace("QTY", "2000")), book_events())  # 200,000 USDT > 100,000
    orders = list(tb.stack.engine.orders.values())  # the decision's, then the 5 s re-plan's: refused alike
    assert [o.created_ns for o in orders] == [T0 + 3 * NS + 100 * MS, T0 + 5 * NS]
    assert all(o.status is OrderStatus.REJECTED and "insufficient balance" in o.reason for o in orders)
    assert not tb.fills and tb.stack.portfolio.position_qty(IID) == 0


def test_a_limit_order_rests_and_fills_as_maker_at_its_price(tmp_path: Path) -> None:
    text = ONE.replace("QTY", "0.1") + "\n[execution]\norder_type = \"LIMIT\"\nlimit_offset_bps = 10.0\n"
    evs = book_events()
    # a seller hits the bids through our resting buy (100 - 10 bps = 99.9) at 3.5 s
    evs.append((T0 + 3 * NS + 500 * MS, TRADE, 99.5, 1.0, True))
    evs.sort(key=lambda e: e[0])
    tb, _, _ = run_both(cfg_of(tmp_path, text), evs)
    order = next(iter(tb.stack.engine.orders.values()))  # the cross up's (that trade makes later crosses)
    assert order.side is Side.BUY and order.price == Decimal("99.9") and order.status is OrderStatus.FILLED
    assert tb.tick_summary()["orders_open_at_end"] == 2  # the later crosses' limits still rest
    assert [(f.qty, f.price, f.liquidity) for f in tb.fills] == [(Decimal("0.1"), Decimal("99.9"), Liquidity.MAKER)]
    assert tb.fills[0].fee == Decimal("0.00199800")  # maker rate 0.0002
    assert tb.fills[0].ts_event_ns == T0 + 3 * NS + 500 * MS


# ---------------------------------------------------------------- the command


def sim_exec(argv: list[str]) -> tuple[int, str, str]:
    import argparse

    from nautilus_hmm.research import report

    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    report.add_sim_exec_command(sub)
    out, err = io.StringIO(), io.StringIO()
    rc = report.run_sim_exec(ap.parse_args(["sim-exec", *argv]), out, err)
    return rc, out.getvalue(), err.getvalue()


def test_command_writes_both_runs_and_the_comparison(tmp_path: Path, capture: Path) -> None:
    (tmp_path / "two.toml").write_text(TWO)
    rc, out, err = sim_exec(["--config", str(tmp_path / "two.toml"), "--capture", str(capture),
                             "--out", str(tmp_path / "run"), "--no-report"])
    assert rc == 0, err
    assert "decisions: " in out and "identical" in out
    comp = orjson.loads((tmp_path / "run" / "comparison.json").read_bytes())
    assert comp["decisions"]["identical"] and comp["symbols"] == ["BTCUSDT"] and comp["bar_interval_s"] == 2
    for sub in ("ticks", "bars"):
        for name in ("fills.csv", "equity.csv", "summary.json", "fills_by_strategy.csv"):
            assert (tmp_path / "run" / sub / name).stat().st_size > 0
    summary = orjson.loads((tmp_path / "run" / "ticks" / "summary.json").read_bytes())
    assert summary["events"] > 5000 and summary["fills"] == comp["fills"]["ticks"]
    assert (tmp_path / "run" / "fills_vs_bars.csv").read_text().startswith("decided_at_ns,")


def test_command_refuses_an_hmm_strategy_naming_it(tmp_path: Path, capture: Path) -> None:
    text = SIM.replace("BAR", "300") + RISK + '\n[[strategies]]\nid = "hmm"\nkind = "hmm"\ninstruments = ["sim:BTCUSDT"]\nbar_interval_s = 300\n'
    (tmp_path / "h.toml").write_text(text)
    rc, _, err = sim_exec(["--config", str(tmp_path / "h.toml"), "--capture", str(capture), "--out", str(tmp_path / "o")])
    assert rc == 78 and "strategies[0] (id 'hmm') is kind \"hmm\"" in err and "no other strategy" in err


def test_the_nodes_own_config_runs_on_ticks_with_its_hmm_strategy_left_out(tmp_path: Path, capture: Path) -> None:
    node_config = Path(__file__).resolve().parents[3] / "config.toml"
    rc, _, err = sim_exec(["--config", str(node_config), "--capture", str(capture), "--out", str(tmp_path / "o"),
                             "--no-report"])
    assert rc == 0, err
    assert "note: " in err and "strategies[0] (id 'hmm')" in err and "left out, the others run" in err
    comp = orjson.loads((tmp_path / "o" / "comparison.json").read_bytes())
    assert comp["ticks"]["strategies_left_out"] == ["strategies[0] (id 'hmm')"]
    assert comp["bar_interval_s"] == 10 and comp["decisions"]["identical"]
    by_strategy = (tmp_path / "o" / "ticks" / "equity_by_strategy.csv").read_text()
    assert ",trend," in by_strategy and ",hmm," not in by_strategy


def test_command_names_a_damaged_capture(tmp_path: Path, capture: Path) -> None:
    (tmp_path / "two.toml").write_text(TWO)
    raw = capture.read_bytes()
    bad = tmp_path / "cut.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    rc, _, err = sim_exec(["--config", str(tmp_path / "two.toml"), "--capture", str(bad), "--out", str(tmp_path / "o")])
    # cut in the middle: the lines before the cut decoded, the next one is named
    assert rc == 2 and "damaged or truncated gzip after" in err
    line = int(err.split(f"{bad}:", 1)[1].split(":", 1)[0])
    assert 1000 < line < len(gzip.decompress(capture.read_bytes()).split(b"\n"))
    assert not (tmp_path / "o").exists()


def test_command_says_when_no_strategy_trades_the_captured_symbol(tmp_path: Path, capture: Path) -> None:
    (tmp_path / "eth.toml").write_text(TWO.replace("BTCUSDT", "ETHUSDT"))
    rc, _, err = sim_exec(["--config", str(tmp_path / "eth.toml"), "--capture", str(capture), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no strategy trades a symbol of the data (BTCUSDT)" in err


def test_command_says_when_the_capture_is_too_short_for_one_bar(tmp_path: Path, capture: Path) -> None:
    (tmp_path / "two.toml").write_text(TWO)
    rc, _, err = sim_exec(["--config", str(tmp_path / "two.toml"), "--capture", str(capture),
                           "--bar-interval-s", "3600", "--out", str(tmp_path / "o")])
    assert rc == 2 and "no bar closed in the trades of BTCUSDT" in err


def test_overlapping_captures_of_one_symbol_are_refused(capture: Path, tmp_path: Path) -> None:
    other = tmp_path / "again.gz"
    other.write_bytes(capture.read_bytes())
    with pytest.raises(CaptureError, match=r"overlaps .* in time \(both BTCUSDT\)"):
        load_by_symbol(capture, other)


def test_a_capture_mixing_symbols_is_refused_naming_the_line(tmp_path: Path) -> None:
    p = tmp_path / "mixed.jsonl"
    p.write_text('1 {"stream":"btcusdt@trade","data":{"p":"1","q":"1","m":true}}\n'
                 '2 {"stream":"ethusdt@trade","data":{"p":"1","q":"1","m":true}}\n')
    with pytest.raises(CaptureError, match=r"mixed.jsonl:2: stream of ETHUSDT after BTCUSDT"):
        load_by_symbol(p)


def test_run_ticks_writes_no_outputs_without_out(tmp_path: Path, capture: Path) -> None:
    cfg = cfg_of(tmp_path, TWO)
    run = run_ticks(cfg, [capture], None, compare=False)
    assert run.out is None and run.bars is None and run.comparison is None
    assert run.tick_summary["events"] > 5000 and run.ticks.bars > 20


# ---------------------------------------------------------------- the venue's answers and reports


class Venue:
    """A TickVenue on a bus and a manual clock, over the book of `book_events`, and what it published."""

    def __init__(self, tmp_path: Path, latency_ms: int = 10) -> None:
        from nautilus_hmm.backtest import sim_venue_config
        from nautilus_hmm.core.bus import Bus
        from nautilus_hmm.core.clock import ManualClock
        from nautilus_hmm.messages import FillReport, OrderStatusReport
        from nautilus_hmm.research.tick_backtest import TickVenue

        self.bus, self.clock = Bus(), ManualClock(start_ns=T0)
        self.venue = TickVenue(sim_venue_config(cfg_of(tmp_path, ONE.replace("QTY", "0.1"))), self.bus, self.clock,
                               SimExecConfig(latency_ms * MS, latency_ms * MS, 0.0002, 0.001), {"BTCUSDT": 100.0})
        self.sim = self.venue.sims[IID]
        self.reports: list = []
        self.bus.subscribe(FillReport, self.reports.append)
        self.bus.subscribe(OrderStatusReport, self.reports.append)
        self.step((T0, SNAPSHOT, [(99.0, 5.0)], [(101.0, 0.02), (102.0, 10.0)]))
        self.step((T0, TRADE, 100.0, 0.5, False))

    def step(self, ev: tuple) -> None:
        """What is due before `ev`, each at its time, then `ev` (TickBacktest.run's order)."""
        while self.sim.due_ns() <= ev[0]:
            self.clock.set_time_ns(max(self.clock.time_ns(), self.sim.due_ns()))
            self.sim.process_next(self.venue)
        self.clock.set_time_ns(ev[0])
        self.sim.apply_event(ev)

    def request(self, cid: str, side: Side, qty: str, price: str | None = None, otype: str = "LIMIT"):
        from nautilus_hmm.domain.enums import OrderType
        from nautilus_hmm.domain.orders import OrderRequest

        return self.venue.submit_order_nowait(OrderRequest(
            cid, IID, side, OrderType(otype), Decimal(qty), None if price is None else Decimal(price)))

    def statuses(self) -> list[tuple[int, str, str]]:
        from nautilus_hmm.messages import OrderStatusReport

        return [(r.ts_init_ns - T0, r.order.client_order_id, r.order.status.value) for r in self.reports
                if type(r) is OrderStatusReport]


def quiet(ms: int) -> tuple:
    return (T0 + ms * MS, DEPTH, [], [])


def test_a_cancel_is_answered_pending_and_takes_effect_when_it_arrives(tmp_path: Path) -> None:
    v = Venue(tmp_path)
    ack = v.request("a", Side.BUY, "0.1", "98")
    assert ack.status is OrderStatus.ACCEPTED and ack.filled_qty == 0
    v.step(quiet(15))
    v.clock.set_time_ns(T0 + 15 * MS)
    assert v.venue.cancel_order_nowait(IID, "a").status is OrderStatus.PENDING_CANCEL
    for ms in (20, 30, 34, 36):
        v.step(quiet(ms))
    # sent at 15 ms, at the venue at 25, reported at 35
    assert v.statuses() == [(35 * MS, "a", "CANCELED")]
    assert [o.client_order_id for o in v.venue.open_orders_nowait()] == []


def test_a_fill_beats_the_cancel_and_a_cancel_of_a_filled_order_is_refused(tmp_path: Path) -> None:
    from nautilus_hmm.core.errors import OrderRejected
    from nautilus_hmm.messages import FillReport

    v = Venue(tmp_path)
    v.request("b", Side.BUY, "0.1", "99")  # joins the bid at 99 behind 5.0
    v.step(quiet(12))
    v.clock.set_time_ns(T0 + 12 * MS)
    v.venue.cancel_order_nowait(IID, "b")  # arrives at 22 ms
    v.step((T0 + 15 * MS, TRADE, 98.5, 1.0, True))  # a seller trades through 99 at 15 ms: all of it fills
    with pytest.raises(OrderRejected, match="already FILLED"):  # the venue knows; the report is on its way
        v.venue.cancel_order_nowait(IID, "b")
    for ms in (20, 26, 40):
        v.step(quiet(ms))
    fills = [r.fill for r in v.reports if type(r) is FillReport]
    assert [(f.qty, f.price, f.liquidity, f.ts_ns - T0) for f in fills] == [
        (Decimal("0.1"), Decimal("99"), Liquidity.MAKER, 15 * MS)]
    assert v.statuses() == [(25 * MS, "b", "FILLED")]  # no CANCELED: the cancel found it filled


def test_requests_the_venue_refuses_at_once(tmp_path: Path) -> None:
    from nautilus_hmm.core.errors import OrderRejected

    v = Venue(tmp_path)
    with pytest.raises(OrderRejected, match="LOT_SIZE"):
        v.request("c", Side.BUY, "0.000001", "98")
    v.request("d", Side.BUY, "0.1", "98")
    with pytest.raises(OrderRejected, match="Duplicate order sent"):
        v.request("d", Side.BUY, "0.1", "98")
    with pytest.raises(OrderRejected, match=r"insufficient balance.*SELL"):  # no BTC to sell
        v.request("e", Side.SELL, "0.1", "103")
    with pytest.raises(OrderRejected, match="Unknown order sent"):
        v.venue.cancel_order_nowait(IID, "never-sent")
    assert v.venue.rejected == 4 and not v.reports


def test_a_post_only_order_the_book_crosses_before_it_arrives_is_reported_expired(tmp_path: Path) -> None:
    v = Venue(tmp_path)
    assert v.request("m", Side.BUY, "0.1", "100.5", "LIMIT_MAKER").status is OrderStatus.ACCEPTED  # below 101
    v.step((T0 + 5 * MS, DEPTH, [], [(101.0, 0.0), (102.0, 0.0), (100.2, 3.0)]))  # asks come down to 100.2
    for ms in (12, 25):
        v.step(quiet(ms))
    (st,) = [r.order for r in v.reports]
    assert st.status is OrderStatus.EXPIRED and st.reason.startswith("rejected on arrival:")
    assert "would immediately match" in st.reason


def test_two_symbols_replay_on_one_clock_with_the_same_decisions_as_their_bars(
        capture: Path, tmp_path: Path) -> None:
    lines = gzip.decompress((CAPTURES / "spot_ethusdt_20240808.gz").read_bytes()).split(b"\n")
    t0 = int(lines[0].split(b" ", 1)[0])
    eth = tmp_path / "spot_ethusdt_60s.gz"
    eth.write_bytes(gzip.compress(b"\n".join(ln for ln in lines if ln and int(ln.split(b" ", 1)[0]) <= t0 + 60 * NS)))
    text = (TWO.replace('symbols = ["BTCUSDT"]', 'symbols = ["BTCUSDT", "ETHUSDT"]')
            .replace('instruments = ["sim:BTCUSDT"]', 'instruments = ["sim:BTCUSDT", "sim:ETHUSDT"]')
            .replace("initial_prices = { BTCUSDT = 60000.0 }", "initial_prices = { BTCUSDT = 60000.0, ETHUSDT = 2600.0 }"))
    run = run_ticks(cfg_of(tmp_path, text), [capture, eth], tmp_path / "out", report=False)
    assert run.comparison is not None
    assert run.comparison["symbols"] == ["BTCUSDT", "ETHUSDT"] and run.comparison["decisions"]["identical"]
    fills = (tmp_path / "out" / "ticks" / "fills.csv").read_text()
    assert "sim:BTCUSDT" in fills and "sim:ETHUSDT" in fills
    assert run.tick_summary["engine_discrepancies"] == []


def test_command_names_every_config_error(tmp_path: Path, capture: Path) -> None:
    (tmp_path / "bad.toml").write_text(TWO.replace("fast = 3", "fast = 3\nfastest = 1"))
    rc, _, err = sim_exec(["--config", str(tmp_path / "bad.toml"), "--capture", str(capture), "--out", str(tmp_path / "o")])
    assert rc == 78 and "fastest" in err and "bad.toml" in err


def test_command_refuses_a_negative_latency(tmp_path: Path, capture: Path) -> None:
    (tmp_path / "two.toml").write_text(TWO)
    rc, _, err = sim_exec(["--config", str(tmp_path / "two.toml"), "--capture", str(capture), "--latency-ms", "-1",
                           "--out", str(tmp_path / "o")])
    assert rc == 2 and "--latency-ms -1.0: must be a number >= 0" in err


def test_a_tick_replay_is_deterministic(tmp_path: Path, capture: Path) -> None:
    cfg = cfg_of(tmp_path, TWO)
    events, bars = load_ticks([capture], 2)
    runs = []
    for _ in range(2):
        tb = TickBacktest(cfg, bars, events)
        _, equity = tb.run()
        runs.append(([(f.ts_event_ns, f.side, f.qty, f.price, f.fee, f.liquidity) for f in tb.fills], equity))
    assert runs[0] == runs[1] and runs[0][0]


def test_depth_only_data_has_no_trades_to_build_bars_from(tmp_path: Path) -> None:
    (tmp_path / "two.toml").write_text(TWO)
    d = Path("/work/shared/fixtures/marketdata/nautilus_trader")
    rc, _, err = sim_exec(["--config", str(tmp_path / "two.toml"), "--capture", str(d / "binance_btcusdt-depth-snap.csv"),
                           str(d / "binance_btcusdt-depth-update.csv"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no bar closed in the trades of BTCUSDT" in err


def test_command_names_a_bit_flipped_capture(tmp_path: Path, capture: Path) -> None:
    (tmp_path / "two.toml").write_text(TWO)
    raw = bytearray(capture.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    bad = tmp_path / "flipped.gz"
    bad.write_bytes(bytes(raw))
    rc, _, err = sim_exec(["--config", str(tmp_path / "two.toml"), "--capture", str(bad), "--out", str(tmp_path / "o")])
    # the deflate blocks still decode; only the checksum knows: no line is claimed good or bad
    assert rc == 2 and f"{bad}: damaged gzip: its CRC32 does not match the content" in err
    assert "cannot be located" in err and not (tmp_path / "o").exists()


def test_command_draws_the_tick_fills_against_a_slippage_model(tmp_path: Path, capture: Path) -> None:
    from nautilus_hmm.research import slippage as slip

    doc = {"kind": slip.KIND, "format_version": 1, "created_at": "2026-01-01T00:00:00Z", "instruments": ["x"],
           "features": list(slip.FEATURES), "coef": [1.0, 0.0, 0.0, 2.0], "size_ref_quote": 100.0,
           "vol_window_s": 300.0, "clip_bps": [-10.0, 50.0], "fit": {}, "training": {}, "library_versions": {}}
    model = slip.SlippageModel.from_dict(doc, "test").save(tmp_path / "slippage_model.json")
    (tmp_path / "two.toml").write_text(TWO)
    rc, out, err = sim_exec(["--config", str(tmp_path / "two.toml"), "--capture", str(capture), "--out",
                             str(tmp_path / "o"), "--no-report", "--no-compare", "--slippage-model", str(model)])
    assert rc == 0, err
    summary = orjson.loads((tmp_path / "o" / "ticks" / "research_summary.json").read_bytes())
    assert summary["slippage_model"]["sha256"] == slip.load_model(model).sha256
    assert summary["sim_taker_fills"] > 0 and "tick fills vs" in out
    assert not (tmp_path / "o" / "bars").exists()


def test_tick_options_without_config_are_refused(tmp_path: Path, capture: Path) -> None:
    rc, _, err = sim_exec(["--capture", str(capture), "--out", str(tmp_path / "o"), "--bar-interval-s", "5"])
    assert rc == 2 and "--bar-interval-s only with --config" in err
