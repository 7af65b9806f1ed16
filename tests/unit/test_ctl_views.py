"""The ctl views (ctl_views) on the API's real shapes: what an operator must see is there,
plain text has no escape codes, a terminal gets colour unless NO_COLOR is set."""

from __future__ import annotations

import contextlib
import io
import random

import pytest

from nautilus_hmm.ctl_views import (
    emit,
    plain,
    render_event,
    render_orders,
    render_positions,
    render_regimes,
    render_status,
    render_trading_state,
    table,
)

POSITION = {"instrument_id": "sim:BTCUSDT", "quote_asset": "USDT", "qty": "-0.25000", "avg_px": "60010.00",
            "mark": "59000.00", "realized_pnl": "12.50000000", "unrealized_pnl": "252.50000000", "fees": "0.6",
            "exposure": "-14750.0"}
PNL = {"currency": "USDT", "equity": "100264.40", "peak_equity": "100300.00", "drawdown_pct": "0.0355",
       "realized_pnl": "12.5", "unrealized_pnl": "252.5", "fees": "0.6", "day_realized_pnl": "11.9",
       "cash": {"USDT": "115014.4"}, "balances": {"USDT": {"total": "115014.4", "mark": "1", "value": "115014.4"},
                                                   "XYZ": {"total": "3", "mark": None, "value": None}},
       "unvalued": ["XYZ"], "gross_exposure": "14750.0"}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_positions_show_a_short_position_its_pnl_and_an_unvalued_balance() -> None:
    text = plain(render_positions({"positions": [POSITION], "pnl": PNL}))
    lines = text.splitlines()
    assert lines[1].split() == ["sim:BTCUSDT", "-0.25000", "60010.00", "59000.00", "252.50", "12.50", "0.60",
                                "-14,750.00"]
    assert "equity 100,264.40 USDT (peak 100,300.00, drawdown 0.04%)" in text
    assert any(line.split() == ["XYZ", "3", "-", "unvalued"] for line in lines)


def test_a_position_of_zero_is_flat() -> None:
    flat = {**POSITION, "qty": "0.00000"}
    assert plain(render_positions({"positions": [flat], "pnl": {}})) == "no open positions (flat)"


def test_status_names_unhealthy_components_monitor_mode_and_an_unknown_outcome() -> None:
    status = {"version": "1.2.3", "uptime_s": 90061.5, "trading_state": "HALTED", "trading_state_reason": "kill",
              "mode": "monitor", "components": {
                  "sim": {"state": "backoff", "restarts": 3, "healthy": False, "detail": "",
                          "last_error": "ConnectionResetError()"}},
              "config": {"hash": "abc", "path": "/etc/x.toml", "loaded_at_ns": 0}, "loop_lag_p99_s": 0.0123,
              "risk": {"venues": {"sim": {"state": "HALTED", "reason": "gave up", "source": "supervisor"}},
                       "breakers": {"sim": "open"}},
              "execution": {"orders": 4, "fills": 2, "rejected": 1, "unknown_outcome": ["nh-1"]},
              "reconciliation": {"sim": {"ok": False}}, "positions": [POSITION], "open_orders": [],
              "monitor": {"withheld_orders": {"submit": 7}},
              "models": {"production": "m-1", "canary": None, "problem": "no bars for 10 min", "training": None}}
    text = plain(render_status(status))
    first = text.splitlines()[0]
    assert first == ("nautilus-hmm 1.2.3, up 1d 1h 1m 1s, trading HALTED (kill); MONITOR MODE: never sends an "
                     "order")
    assert "loop lag p99 12.3 ms" in text and "venues: sim HALTED (gave up), breaker open" in text
    assert "UNKNOWN OUTCOME: nh-1" in text and "reconciliation: NOT OK for sim" in text
    assert "withheld by monitor mode: submit=7" in text
    assert "models: production m-1, canary -; PROBLEM: no bars for 10 min" in text
    row = next(line for line in text.splitlines() if line.startswith("sim "))
    assert row.split()[:4] == ["sim", "backoff", "NO", "3"] and "ConnectionResetError()" in row


def test_regimes_show_the_state_with_its_posterior_and_the_decision() -> None:
    lane = {"model_id": "m-1", "shadow": False, "ready": True, "warmup_bars_left": 0, "exposure": 0.5,
            "stale": False, "ts_ns": 1_700_000_000_000_000_000,
            "macro": {"state": "bull", "posteriors": {"bull": 0.934, "bear": 0.066}},
            "micro": {"state": "trend", "posteriors": {"trend": 0.71, "chop": 0.29}},
            "decision": {"action": "enter_long", "guardrail": "", "reason": "", "target_exposure": 0.5,
                         "confidence": 0.93, "at_ns": 1}}
    canary = {**lane, "model_id": "m-2", "shadow": True, "ready": False, "warmup_bars_left": 12}
    answer = {"production": "m-1", "canary": "m-2",
              "instruments": {"sim:BTCUSDT": {"production": lane, "canary": canary, "last_close": 1.0}}}
    lines = plain(render_regimes(answer)).splitlines()
    assert lines[0] == "production m-1, canary m-2"
    assert lines[3].split() == ["sim:BTCUSDT", "production", "m-1", "ready", "bull", "0.93", "trend", "0.71",
                                "enter_long", "->", "0.50", "0.50", "2023-11-14", "22:13:20"]
    assert "canary (shadow)" in lines[4] and "warming up (12 bars)" in lines[4]


def test_an_event_line_has_time_type_and_fields_without_the_timestamps() -> None:
    line = plain(render_event("FillReport", {"type": "FillReport", "ts_event_ns": 1_700_000_000_123_000_000,
                                             "ts_init_ns": 1, "venue": "sim",
                                             "fill": {"side": "BUY", "qty": "0.01"}}))
    assert line == "22:13:20.123  FillReport  venue=sim fill=side=BUY qty=0.01"


def test_a_kill_with_flatten_says_what_was_sent() -> None:
    text = plain(render_trading_state({"trading_state": "REDUCING", "flatten_orders": 2, "cancel_requests": 1}))
    assert text == "trading REDUCING; 1 cancel request(s) sent; 2 flatten order(s) sent, HALTED once flat"


def test_a_terminal_gets_colour_and_a_pipe_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")
    tty, pipe = Tty(), io.StringIO()
    view = render_trading_state({"trading_state": "HALTED"})
    emit(view, tty)
    emit(view, pipe)
    assert "\x1b[" in tty.getvalue() and "HALTED" in tty.getvalue()
    assert pipe.getvalue() == "trading HALTED\n"


def test_no_color_turns_the_terminals_colour_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    tty = Tty()
    emit(render_trading_state({"trading_state": "HALTED"}), tty)
    assert "\x1b[3" not in tty.getvalue() and "HALTED" in tty.getvalue()  # no colour (bold may stay)


def test_a_pipe_never_wraps_a_long_row() -> None:
    long_reason = "x" * 500
    text = plain(table(["A", "REASON"], [["1", long_reason]]))
    assert text.splitlines()[1].endswith(long_reason)


def test_values_that_look_like_rich_markup_are_printed_as_they_are() -> None:
    # A currency, an asset, a reason from the daemon's answer: text, never markup (a `[/x]` would raise).
    text = plain(render_positions({"positions": [], "pnl": {"currency": "[/x]", "balances": {"[b]A": {"total": "1"}}}}))
    assert "MARK ([/x])" in text and "[b]A" in text
    line = plain(render_event("[red]X[/red]", {"reason": "[/bold] closing"}))
    assert line.endswith("[red]X[/red]  reason=[/bold] closing")


def _damaged(value: object, rng: random.Random) -> object:
    """`value` with one field somewhere replaced by a value of another type."""
    junk = [None, 0, -1.5, float("nan"), True, "", "[/x]", [], {}, [1, "a"], {"k": None}, "not a number", 2**70, "two\nlines\r"]
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        out = dict(value)
        out[key] = _damaged(value[key], rng) if rng.random() < 0.5 else rng.choice(junk)
        return out
    if isinstance(value, list) and value:
        i = rng.randrange(len(value))
        return [*value[:i], _damaged(value[i], rng) if rng.random() < 0.5 else rng.choice(junk), *value[i + 1:]]
    return rng.choice(junk)


SHAPES = {
    "render_positions": {"positions": [POSITION], "pnl": PNL},
    "render_status": {"version": "1", "uptime_s": 5, "trading_state": "ACTIVE", "trading_state_reason": "r",
                      "mode": "trade", "components": {"sim": {"state": "running", "restarts": 0, "healthy": True,
                                                              "detail": ""}},
                      "config": {"hash": "h", "path": "p", "loaded_at_ns": 1}, "loop_lag_p99_s": 0.1,
                      "risk": {"venues": {"sim": {"state": "ACTIVE"}}, "breakers": {"sim": "closed"}}, "pnl": PNL,
                      "execution": {"orders": 1, "fills": 1, "rejected": 0, "unknown_outcome": []},
                      "reconciliation": {"sim": {"ok": True}}, "positions": [POSITION], "open_orders": [],
                      "models": {"production": "m", "training": {"reason": "x"}}},
    "render_orders": {"orders": [{"client_order_id": "c", "strategy_id": "s", "instrument_id": "sim:BTCUSDT",
                                  "side": "BUY", "order_type": "LIMIT", "quantity": "1", "price": "2",
                                  "filled_qty": "0", "avg_px": None, "status": "ACCEPTED", "reason": "r",
                                  "created_ns": 1}]},
    "render_fills": {"fills": [{"ts_ns": 1, "venue": "sim", "instrument_id": "i", "trade_id": "t",
                                "client_order_id": "c", "side": "SELL", "qty": "1", "price": "2", "fee": "0.1",
                                "fee_asset": "USDT", "liquidity": "MAKER"}], "next_since": 2},
    "render_models": {"production": "m", "canary": None, "models": [{"id": "m", "status": "production",
                                                                     "metrics": {"ll": -1.0}, "n_bars": 3}]},
    "render_regimes": {"production": "m", "instruments": {"sim:X": {"production": {
        "model_id": "m", "ready": True, "macro": {"state": "a", "posteriors": {"a": 1.0}},
        "decision": {"action": "hold", "target_exposure": 0.0}}}}},
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_damaged_answer_renders_or_raises_only_what_show_turns_into_json(name: str) -> None:
    import nautilus_hmm.ctl_views as views

    render = getattr(views, name)
    rng = random.Random(name)
    for _ in range(100):
        answer = _damaged(SHAPES[name], rng)
        with contextlib.suppress(KeyError, TypeError, AttributeError, ValueError):
            plain(render(answer))


def test_times_beyond_the_calendar_are_shown_as_numbers_not_errors() -> None:
    from nautilus_hmm.ctl_views import when

    assert when(2**70) == str(2**70)
    assert plain(render_event("X", {"ts_event_ns": 2**70, "a": 1})) == "--:--:--.---  X  a=1"


def test_a_damaged_event_always_renders_as_one_line() -> None:
    rng = random.Random(7)
    event = {"type": "FillReport", "ts_event_ns": 1_700_000_000_000_000_000, "ts_init_ns": 1, "venue": "sim",
             "fill": {"side": "BUY", "qty": "0.01", "price": "60000"}}
    for _ in range(300):
        data = _damaged(event, rng)
        assert len(plain(render_event("FillReport", data)).splitlines()) == 1


def test_a_value_with_line_breaks_keeps_its_row_on_one_line() -> None:
    order = {"client_order_id": "c-1", "side": "BUY\n", "status": "REJECTED", "reason": "venue said:\nno\r\nreally",
             "quantity": "1\n2"}
    lines = plain(render_orders({"orders": [order]})).splitlines()
    assert len(lines) == 2 and "venue said:\\nno\\r\\nreally" in lines[1] and "1\\n2" in lines[1]
