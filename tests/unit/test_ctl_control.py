"""`nautilus-hmm ctl strategies | allocations | governance` against the real control routes
(web.control over a fake plane) on a loopback server: tables, --json, exit codes, errors on
stderr naming the field or id, usage errors, and nothing changed by a refused command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import structlog
import structlog.testing

from nautilus_hmm.cli import main
from nautilus_hmm.ctl_views import (
    plain,
    render_allocations,
    render_governance,
    render_strategies,
    table,
)
from tests.unit.test_cli import AdminStub
from tests.unit.web.test_control import TOKEN, ClearingPlane, FakePlane, serving


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("NAUTILUS_HMM_ADMIN_TOKEN", "NAUTILUS_HMM_ADMIN_TOKEN_FILE", "NAUTILUS_HMM_ADMIN_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no state/admin-token here


@pytest.fixture
async def daemon(env: None) -> AsyncIterator[tuple[FakePlane, str]]:
    plane = FakePlane()
    # The server runs in this process: its log lines (admin_action) are captured here, so
    # stderr holds only what ctl prints, whatever logging an earlier test configured.
    with structlog.testing.capture_logs():
        async with serving(plane) as (url, _):
            yield plane, url


async def ctl(url: str, *argv: str, token: str | None = TOKEN) -> int:
    """Run `nautilus-hmm ctl ...` in a thread (its client blocks) while the loop serves."""
    opts = ["--url", url] + (["--token", token] if token else [])
    return await asyncio.to_thread(main, ["ctl", *opts, *argv])


async def test_strategies_prints_one_row_per_strategy(daemon, capsys) -> None:
    _, url = daemon
    assert await ctl(url, "strategies") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["ID", "KIND", "STATE", "SHARE"]
    assert out[1].split()[:4] == ["trend", "sma_cross", "active", "50.0%"]
    assert "sim:BTCUSDT 0.015" in out[1] and "exposure 0.80" in out[1] and "5,012.50" in out[1]
    assert out[2].startswith("hmm")


async def test_strategies_json_is_the_servers_answer(daemon, capsys) -> None:
    _, url = daemon
    assert await ctl(url, "strategies", "--json") == 0
    rows = orjson.loads(capsys.readouterr().out)["strategies"]
    assert [r["strategy_id"] for r in rows] == ["trend", "hmm"] and rows[0]["pnl_usd"] == "12.50"


async def test_one_strategy_is_key_value_lines(daemon, capsys) -> None:
    _, url = daemon
    assert await ctl(url, "strategies", "hmm") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == ["strategy_id: hmm", "kind: hmm", "state: active"]
    assert "positions: sim:BTCUSDT=0.015" in out


async def test_an_unknown_strategy_is_exit_1_naming_it_and_the_known_ids(daemon, capsys) -> None:
    _, url = daemon
    assert await ctl(url, "strategies", "ghost") == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.strip() == "error: unknown strategy 'ghost' (known: trend, hmm)"


@pytest.mark.parametrize(("action", "state"), [("disable", "disabled"), ("reduce", "reduce"), ("enable", "active")])
async def test_a_state_action_changes_the_strategy_with_the_reason(daemon, capsys, action, state) -> None:
    plane, url = daemon
    plane.states["trend"] = "disabled" if action == "enable" else "active"
    assert await ctl(url, "strategies", action, "trend", "--reason", "manual review") == 0
    assert plane.states["trend"] == state
    assert plane.changes == [("trend", action, "manual review", "admin")]
    assert capsys.readouterr().out == f"trend: now {state} (share 50.0%)\n"


async def test_a_state_action_on_an_unknown_id_is_exit_1_and_changes_nothing(daemon, capsys) -> None:
    plane, url = daemon
    assert await ctl(url, "strategies", "disable", "ghost") == 1
    assert "unknown strategy 'ghost'" in capsys.readouterr().err
    assert plane.changes == []


async def test_a_state_action_without_a_token_is_refused_naming_where_it_was_looked_for(daemon, capsys,
                                                                                        tmp_path) -> None:
    plane, url = daemon
    assert await ctl(url, "strategies", "disable", "trend", token=None) == 4  # authentication
    err = capsys.readouterr().err
    assert "missing or invalid bearer token" in err and str(tmp_path / "state" / "admin-token") in err
    assert plane.states["trend"] == "active"


@pytest.mark.parametrize(("argv", "message"), [
    (["strategies", "enable"], "enable needs a strategy id"),
    (["strategies", "trend", "hmm"], "'trend' is not an action"),
    (["strategies", "--reason", "x"], "--reason goes with enable, disable or reduce"),
    (["allocations", "--set", "trend=0.5", "--set", "hmm=0.5"], "--set needs --expires-s N"),
    (["allocations", "--expires-s", "60"], "--expires-s goes with --set"),
    (["allocations", "--set", "trend=0.5", "--set", "trend=0.5", "--expires-s", "60"], "given twice"),
    (["allocations", "--clear", "--set", "trend=1", "--expires-s", "60"], "--clear goes alone"),
])
async def test_usage_errors_are_exit_2_and_send_nothing(env, capsys, argv, message) -> None:
    with AdminStub() as stub:
        assert await ctl(stub.url, *argv) == 2
    assert message in capsys.readouterr().err and stub.seen == []


@pytest.mark.parametrize("bad", ["trend", "trend=", "=0.5", "trend=half", "trend=nan"])
def test_a_malformed_set_is_an_argparse_error_naming_it(bad, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ctl", "allocations", "--set", bad, "--expires-s", "60"])
    assert info.value.code == 2
    assert f"{bad!r}: expected ID=SHARE" in capsys.readouterr().err


async def test_allocations_prints_shares_and_bounds(daemon, capsys) -> None:
    _, url = daemon
    assert await ctl(url, "allocations") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "allocator: on, shares from static"
    rows = {line.split()[0]: line.split() for line in out[3:]}
    assert rows["trend"][:2] == ["trend", "50.0%"] and rows["trend"][5] == "50.0%"  # max_share


async def test_an_allocation_override_is_sent_and_shown(daemon, capsys) -> None:
    plane, url = daemon
    assert await ctl(url, "allocations", "--set", "trend=0.3", "--set", "hmm=0.7", "--expires-s", "600") == 0
    assert plane.shares == {"trend": 0.3, "hmm": 0.7} and plane.source == "override by admin for 600s"
    assert "shares from override by admin for 600s" in capsys.readouterr().out


async def test_clear_ends_the_override(env, capsys) -> None:
    plane = ClearingPlane()
    plane.shares, plane.source = {"trend": 0.2, "hmm": 0.8}, "override"
    async with serving(plane) as (url, _):
        assert await ctl(url, "allocations", "--clear") == 0
    assert plane.shares == {"trend": 0.5, "hmm": 0.5}
    assert "shares from static (override cleared by admin)" in capsys.readouterr().out


async def test_shares_outside_their_bounds_are_exit_1_naming_the_field_and_change_nothing(daemon, capsys) -> None:
    plane, url = daemon
    assert await ctl(url, "allocations", "--set", "trend=0.9", "--set", "hmm=0.1", "--expires-s", "60") == 1
    assert capsys.readouterr().err.strip() == \
        "error: shares.trend = 0.9: must be within [0.0, 0.5] (min_share, max_share)"
    assert plane.shares == {"trend": 0.5, "hmm": 0.5}


async def test_an_override_naming_an_unknown_strategy_is_exit_1_naming_it(daemon, capsys) -> None:
    _, url = daemon
    assert await ctl(url, "allocations", "--set", "ghost=1", "--expires-s", "60") == 1
    assert "unknown strategy 'ghost' (known: trend, hmm)" in capsys.readouterr().err


async def test_governance_prints_mode_and_decisions(daemon, capsys) -> None:
    _, url = daemon
    assert await ctl(url, "governance") == 0
    out = capsys.readouterr().out
    assert out.startswith("governance: acting")
    assert "DECISIONS (newest first)" in out and "drawdown" in out and "reduce" in out


def test_a_view_of_an_unknown_shape_is_printed_as_json_not_a_traceback(env, capsys) -> None:
    with AdminStub(200, b'{"strategies": "not a list"}') as stub:
        assert main(["ctl", "--url", stub.url, "strategies"]) == 0
    cap = capsys.readouterr()
    assert orjson.loads(cap.out) == {"strategies": "not a list"} and cap.err == ""


def test_a_daemon_without_the_control_routes_says_so(env, capsys) -> None:
    with AdminStub(404, b'{"error": "Not Found"}') as stub:
        assert main(["ctl", "--url", stub.url, "governance"]) == 1
    assert "has no route GET /governance: the control-plane commands need a daemon that runs the control " \
           "plane" in capsys.readouterr().err


def test_an_unreachable_daemon_is_exit_3_naming_the_url(env, capsys) -> None:
    with AdminStub() as stub:
        url = stub.url
    assert main(["ctl", "--url", url, "strategies"]) == 3
    assert f"cannot reach {url}/strategies" in capsys.readouterr().err


def test_the_renderers_take_the_planes_real_view_shapes() -> None:
    # Shapes of control.router.StrategyRouter.view, control.allocator.Allocator.view and
    # control.governance.Governance.view (fields abridged).
    strategies = {"strategies": [{"strategy_id": "breakout", "state": "disabled", "share": 0.25,
                                  "capital_usd": 2500.0, "positions": {"sim:ETHUSDT": "0"}, "pnl_usd": -3.5,
                                  "equity_usd": 2496.5, "drawdown_pct": 1.2, "denials": 2,
                                  "last_target": {"lane": "canary", "instrument": "sim:ETHUSDT", "exposure": None,
                                                  "target_qty": "0.1", "reason": "breakout up"}}]}
    row = plain(render_strategies(strategies)).splitlines()[1]
    assert "disabled" in row and "flat" in row and "qty 0.1 [canary] (breakout up)" in row and "-3.50" in row
    allocations = {"enabled": True, "shares": {"a": 0.6, "b": 0.4}, "source": "override",
                   "computed": {"a": 0.5, "b": 0.5}, "static": {"a": 0.5, "b": 0.5},
                   "bounds": {"a": {"min_share": 0.1, "max_share": 0.9, "weight": 1.0},
                              "b": {"min_share": 0.1, "max_share": 0.9, "weight": 1.0}},
                   "override": {"shares": {"a": 0.6, "b": 0.4}, "source": "admin", "set_ns": 1,
                                "expires_ns": 2, "expires_in_s": 540.2},
                   "last_rebalance_ns": 1_764_763_200_000_000_000, "rebalances": 3, "interval_s": 3600.0,
                   "next_rebalance_in_s": 1200.0,
                   "bandit": {"enabled": True, "arms": {"a": {"posterior_mean_bps": 1.0, "weight": 0.7}}},
                   "state_write_error": None}
    text = plain(render_allocations(allocations))
    assert "override by admin, expires in 540 s" in text and "last 2025-12-03 12:00:00 UTC" in text
    assert text.splitlines()[3].split() == ["a", "60.0%", "50.0%", "50.0%", "10.0%", "90.0%", "1", "70.0%"]
    governance = {"enabled": True, "dry_run": True, "interval_s": 60.0, "evaluations": 7, "last_evaluated_ns": 0,
                  "rules": {"drawdown": {"max_drawdown_pct": 10.0, "action": "reduce"}},
                  "strategies": {"a": {"state": "reduce", "held_by": "drawdown",
                                       "rules": {"drawdown": {"status": "triggered", "reason": "dd 12% > 10%",
                                                              "evidence": {}},
                                                 "loss_streak": {"status": "ok", "reason": "", "evidence": {}}}}},
                  "decisions": [{"ts_ns": 1_764_763_200_000_000_000, "rule": "drawdown", "strategy_id": "a",
                                 "action": "reduce", "acted": False, "dry_run": True,
                                 "reason": "dry run: dd 12% > 10%", "evidence": {"drawdown_pct": 12.0}}]}
    text = plain(render_governance(governance))
    assert text.startswith("governance: dry run (decides, never acts); every 60 s, 7 evaluation(s)")
    assert "drawdown: triggered (dd 12% > 10%)" in text and "loss_streak" not in text.split("RULES NOT OK")[1]
    assert "2025-12-03 12:00:00  drawdown  a" in text


def test_table_right_aligns_numbers_and_pads_text() -> None:
    assert plain(table(["ID", "SHARE"], [["trend", "5.0%"], ["b", "50.0%"]])).splitlines() == \
        ["ID     SHARE", "trend   5.0%", "b      50.0%"]
