"""Router recovery: the strategies' books survive a crash (kill -9) through the journal."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from nautilus_hmm.control.accounts import HOUSE
from nautilus_hmm.control.router import Route
from nautilus_hmm.domain.enums import Liquidity, Side
from nautilus_hmm.domain.orders import VenueFill
from nautilus_hmm.execution.portfolio import Portfolio
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import Fill
from tests.unit.control.conftest import BTC, Rig, instrument, make_rig

D = Decimal
ROUTES = [Route("a", (BTC,)), Route("b", (BTC,)), Route("h", (BTC,), canary_share=0.0)]


class CrashingJournal:
    """The real journal, except that after `crash()` the router's queued rows never reach it
    (what a kill -9 between a fill's durable commit and the next group commit loses)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.crashed = False

    def crash(self) -> None:
        self.crashed = True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.journal, name)
        if name.startswith("record_strategy_") and self.crashed:
            return lambda *a, **k: None
        return attr


async def engine_fill(rig: Rig, journal: Journal, side: Side, qty: str, price: str, fee: str = "0") -> None:
    """What the engine does with a fill: journal it durably, then publish it."""
    rig.trade_seq += 1
    n_trades = rig.trade_seq
    vf = VenueFill(instrument_id=BTC, client_order_id=f"c{n_trades}", venue_order_id=f"v{n_trades}",
                   trade_id=f"T{n_trades}", side=side, qty=D(qty), price=D(price), fee=D(fee), fee_asset="USDT",
                   liquidity=Liquidity.TAKER, ts_ns=rig.clock.time_ns())
    assert await journal.record_fill("sim", vf)
    now = rig.clock.time_ns()
    rig.bus.publish(Fill(ts_event_ns=vf.ts_ns, ts_init_ns=now, instrument_id=BTC, client_order_id=vf.client_order_id,
                         venue_order_id=vf.venue_order_id, trade_id=vf.trade_id, side=side, qty=vf.qty,
                         price=vf.price, fee=vf.fee, fee_asset="USDT", liquidity=Liquidity.TAKER))


def books(rig: Rig) -> dict[str, tuple[Decimal, float]]:
    r = rig.router
    return {a: (r.book.position(a, BTC), float(r.book.pnl(a, r._marks()))) for a in ("a", "b", HOUSE)}


async def test_recover_after_a_crash_restores_every_strategy_book(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal.open(path)
    crashing = CrashingJournal(j)
    rig = make_rig(ROUTES, journal=crashing)  # type: ignore[arg-type]
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="2")
    rig.target("b", BTC, qty="-1")  # crossed against a at the mark
    rig.target("h", BTC, exposure=0.5, lane="canary")  # shadow
    await engine_fill(rig, j, Side.BUY, "1", "100", fee="0.1")
    rig.target("a", BTC, qty="3")
    await j.flush()
    crashing.crash()
    await engine_fill(rig, j, Side.BUY, "1.5", "101", fee="0.15")  # durable; its attribution rows are lost
    rig.bar(BTC, 102.0)
    before = books(rig)
    shadow_before = rig.router.position("h", BTC, lane="canary")
    j.close()  # the process is gone

    j2 = Journal.open(path)
    try:
        rig2 = make_rig(ROUTES, journal=j2)
        await rig2.router.recover()
        rig2.bar(BTC, 102.0)
        assert books(rig2) == before
        assert rig2.router.position("h", BTC, lane="canary") == shadow_before
        assert rig2.router.target("a", BTC) == D("3")
        pf = Portfolio()
        for f in j2.load_fills():
            pf.apply_fill(instrument(BTC), f.side, f.qty, f.price, f.fee, f.fee_asset, f.ts_ns)
        assert sum(p for p, _ in books(rig2).values()) == pf.positions[BTC].qty == D("2.5")
        pos = pf.positions[BTC]
        account_pnl = pos.realized_pnl - pos.fees + pos.unrealized(D("102"))
        assert sum(rig2.router.book.pnl(a, {BTC: D("102")}) for a in rig2.router.book.accounts()) == account_pnl
        # the crash window's attribution is journaled now: a second restart finds it
        await j2.flush()
        assert {r.trade_id for r in j2.load_strategy_fills() if r.kind == "fill"} == {"T1", "T2"}
    finally:
        j2.close()


async def test_a_second_recovery_does_not_attribute_the_crash_window_twice(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal.open(path)
    crashing = CrashingJournal(j)
    rig = make_rig(ROUTES, journal=crashing)  # type: ignore[arg-type]
    rig.target("a", BTC, qty="1")
    await j.flush()
    crashing.crash()
    await engine_fill(rig, j, Side.BUY, "1", "100")
    j.close()
    for _ in range(2):
        j2 = Journal.open(path)
        rig2 = make_rig(ROUTES, journal=j2)
        await rig2.router.recover()
        await j2.flush()
        assert rig2.router.position("a", BTC) == 1 and rig2.router.book.position(HOUSE, BTC) == 0
        j2.close()


async def test_fills_from_before_the_router_go_to_the_house(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal.open(path)
    rig = make_rig(ROUTES)  # no router journal: the fills were journaled by an older version
    await engine_fill(rig, j, Side.BUY, "2", "100")
    j.close()
    j2 = Journal.open(path)
    try:
        rig2 = make_rig(ROUTES, journal=j2)
        await rig2.router.recover()
        assert rig2.router.book.position(HOUSE, BTC) == 2
        assert rig2.router.position("a", BTC) == 0
    finally:
        j2.close()


async def test_a_position_the_accounts_do_not_explain_goes_to_the_house(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal.open(path)
    # an attribution row whose fill the journal does not hold (the real position is flat)
    j.record_strategy_fill(1, "a", BTC, "fill", D("1"), D("100"), D("0"), "GONE", "c-x")
    await j.flush()
    j.close()
    j2 = Journal.open(path)
    try:
        rig2 = make_rig(ROUTES, journal=j2)
        await rig2.router.recover()
        assert rig2.router.position("a", BTC) == 1
        assert rig2.router.book.position(HOUSE, BTC) == -1
        assert rig2.router.book.total_position(BTC) == 0
    finally:
        j2.close()


async def test_pnl_series_resumes_from_the_journaled_equity_samples(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal.open(path)
    j.record_strategy_equity(10, "a", 5_010.0, 10.0, 0.0, 0.0, 5_000.0)
    await j.flush()
    j.close()
    j2 = Journal.open(path)
    try:
        rig2 = make_rig(ROUTES, journal=j2)
        await rig2.router.recover()
        assert rig2.router.pnl_series("a") == [(10, 10.0)]
    finally:
        j2.close()
