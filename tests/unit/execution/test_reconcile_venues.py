"""Two venues holding the same assets (USDT and BTC on both): cash and the reconciliation
baseline are per venue and asset, equity sums them. Real bus, journal and two sim venues on
one node; manual clock."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from pathlib import Path

from nautilus_hmm.bootstrap import TradingStack, build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import BalanceUpdate, ReconciliationCompleted, TargetPosition
from nautilus_hmm.venues.sim.account import ACCOUNT_FILE
from nautilus_hmm.venues.sim.venue import SimVenue

A, B = "sim", "sim2"
BTC_A, BTC_B = InstrumentId(A, "BTCUSDT"), InstrumentId(B, "BTCUSDT")
CFG = {
    "strategy": {"kind": "sma_cross"},
    "venues": {
        "sim": {
            "symbols": ["BTCUSDT"],
            "initial_balances": {"USDT": 100000.0, "BTC": 1.0},
            "market": {"initial_prices": {"BTCUSDT": 60000.0}},
        }
    },
}


class TwoVenueNode:
    """Journal + two sim venues (each with its own account file) + one stack, on one state dir."""

    def __init__(
        self, state_dir: Path, clock: ManualClock, names: tuple[str, ...] = (A, B)
    ) -> None:
        self.cfg = parse(Config, CFG)
        self.clock = clock
        self.bus = Bus()
        self.journal = Journal.open(state_dir / "journal.sqlite3")
        self.venues = {
            name: SimVenue(
                self.cfg.venues.sim, self.bus, clock, _venue_dir(state_dir, name), name=name
            )
            for name in names
        }
        self.st: TradingStack = build_stack(
            self.cfg, self.bus, clock, self.journal, dict(self.venues), durable=True
        )
        self.results: list[ReconciliationCompleted] = []
        self.bus.subscribe(ReconciliationCompleted, self.results.append)
        self._consumer: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        for venue in self.venues.values():
            await venue.start()
            self.st.engine.add_instruments(venue.instruments().values())
        await self.st.engine.start()
        self._consumer = asyncio.create_task(self.st.engine.run())
        self.st.attach_market()
        assert self.st.reconciler is not None
        return await self.st.reconciler.startup()

    def trade(self, iid: InstrumentId, price: float) -> None:
        self.clock.advance(1)
        self.venues[iid.venue].step_trade(iid, price, 5.0, self.clock.time_ns())

    def target(self, iid: InstrumentId, qty: str) -> None:
        now = self.clock.time_ns()
        self.bus.publish(
            TargetPosition(
                ts_event_ns=now,
                ts_init_ns=now,
                strategy_id="t",
                instrument_id=iid,
                target_qty=Decimal(qty),
            )
        )

    async def settle(self) -> None:
        for _ in range(3):
            await self.st.engine.idle()
            await self.journal.flush()

    async def venue_total(self, venue: str, asset: str) -> Decimal:
        bal = (await self.venues[venue].balances()).get(asset)
        return Decimal(0) if bal is None else bal.total

    async def crash(self) -> None:
        """Vanish: only what the journal committed survives."""
        assert self._consumer is not None
        self._consumer.cancel()
        self.st.engine.detach()
        self.journal.close()


def _balance_finding(text: str) -> tuple[str, Decimal, Decimal]:
    """("USDT", expected, at the venue) from "USDT: balance <x> expected, <y> at the venue"."""
    m = re.fullmatch(r"(\w+): balance (\S+) expected, (\S+) at the venue", text)
    assert m is not None, text
    return m[1], Decimal(m[2]), Decimal(m[3])


def _venue_dir(state_dir: Path, name: str) -> Path:
    path = state_dir / name
    path.mkdir(exist_ok=True)
    return path


async def _trade_on_both_and_restart(tmp_path: Path, clock: ManualClock) -> None:
    """A first life: buys BTC on both venues, sells part at B (fees in USDT), then dies."""
    a = TwoVenueNode(tmp_path, clock)
    assert await a.start(), a.results[-1].discrepancies
    a.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    a.trade(BTC_A, 60000.0)
    a.trade(BTC_B, 60000.0)
    a.target(BTC_A, "0.1")
    a.target(BTC_B, "0.2")
    await a.settle()
    a.trade(BTC_A, 60010.0)
    a.trade(BTC_B, 59990.0)
    await a.settle()
    a.target(BTC_B, "0.05")  # a spot sell at B
    await a.settle()
    a.trade(BTC_B, 60050.0)
    await a.settle()
    assert a.st.portfolio.position_qty(BTC_A) == Decimal("0.1")
    assert a.st.portfolio.position_qty(BTC_B) == Decimal("0.05")
    await a.crash()


async def test_restart_with_two_venues_holding_the_same_assets_reconciles_clean(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    await _trade_on_both_and_restart(tmp_path, clock)
    b = TwoVenueNode(tmp_path, clock)
    ok = await b.start()
    assert ok, [r.discrepancies for r in b.results]
    assert {r.venue for r in b.results} == {A, B}
    pf = b.st.portfolio
    # The portfolio's balance of each asset is the sum of what the two venues hold.
    for asset in ("USDT", "BTC"):
        assert pf.cash[asset] == await b.venue_total(A, asset) + await b.venue_total(B, asset)
    await b.crash()


async def test_a_usdt_discrepancy_at_one_venue_is_reported_against_that_venue_only(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    await _trade_on_both_and_restart(tmp_path, clock)
    # Someone withdraws 500 USDT from venue B behind our back.
    path = tmp_path / B / ACCOUNT_FILE
    doc = json.loads(path.read_text())
    usdt = doc["balances"]["USDT"]
    usdt["free"] = str(Decimal(usdt["free"]) - 500)
    path.write_text(json.dumps(doc))
    b = TwoVenueNode(tmp_path, clock)
    assert not await b.start()
    by_venue = {r.venue: r for r in b.results}
    assert by_venue[A].ok, by_venue[A].discrepancies
    have_b = await b.venue_total(B, "USDT")
    assert [_balance_finding(d) for d in by_venue[B].discrepancies] == [
        ("USDT", have_b + 500, have_b)
    ]
    assert b.st.gate.state is TradingState.HALTED
    await b.crash()


async def test_a_balance_update_from_one_venue_leaves_the_other_venues_share(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    await _trade_on_both_and_restart(tmp_path, clock)
    b = TwoVenueNode(tmp_path, clock)
    assert await b.start()
    pf = b.st.portfolio
    at_a, at_b = await b.venue_total(A, "USDT"), await b.venue_total(B, "USDT")
    # Venue A reports a deposit of 250 USDT (its first report of USDT since the start).
    now = clock.time_ns()
    b.bus.publish(
        BalanceUpdate(
            ts_event_ns=now,
            ts_init_ns=now,
            venue=A,
            asset="USDT",
            free=at_a + 250,
            locked=Decimal(0),
        )
    )
    await b.settle()
    assert pf.cash["USDT"] == at_a + 250 + at_b
    # A second report from A moves A's share only; B's share is what B holds.
    b.bus.publish(
        BalanceUpdate(
            ts_event_ns=now,
            ts_init_ns=now,
            venue=A,
            asset="USDT",
            free=at_a + 100,
            locked=Decimal(0),
        )
    )
    await b.settle()
    assert pf.cash["USDT"] == at_a + 100 + at_b
    # Reconciliation now checks each venue's own share: A's against A's balance (which the
    # sim did not change, so 100 too many here), B's agrees.
    results = {r.venue: r for r in await b.st.reconciler.reconcile_now()}
    assert results[B].ok, results[B].discrepancies
    assert [_balance_finding(d) for d in results[A].discrepancies] == [("USDT", at_a + 100, at_a)]
    await b.crash()


async def _journal_legacy_baseline(
    tmp_path: Path, clock: ManualClock, totals: dict[str, str]
) -> None:
    """A journal whose baseline was written before baselines were per venue: one total per asset."""
    j = Journal.open(tmp_path / "journal.sqlite3")
    j.record_event(clock.time_ns(), "baseline_balances", totals)
    await j.flush()
    j.close()


async def test_a_single_venue_journal_with_a_baseline_of_totals_still_reconciles(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    await _journal_legacy_baseline(tmp_path, clock, {"USDT": "100000", "BTC": "1"})
    node = TwoVenueNode(tmp_path, clock, names=(A,))
    assert await node.start(), [r.discrepancies for r in node.results]
    assert node.st.portfolio.cash_at(A, "USDT") == Decimal(100000)
    await node.crash()


async def test_a_baseline_of_totals_on_a_node_with_two_venues_is_a_failed_check_naming_why(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    await _journal_legacy_baseline(tmp_path, clock, {"USDT": "200000", "BTC": "2"})
    node = TwoVenueNode(tmp_path, clock)
    assert not await node.start()
    findings = [d for r in node.results for d in r.discrepancies]
    assert any("one total per asset" in d and "2 venues" in d for d in findings), findings
    assert node.st.portfolio.cash["USDT"] == Decimal(200000)  # equity still counts every balance
    assert node.st.gate.state is TradingState.HALTED
    await node.crash()
