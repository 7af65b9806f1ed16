"""Reload: all-or-nothing apply, invalid keeps the old config, restart-only rejected."""

from __future__ import annotations

from pathlib import Path

from nautilus_hmm.config import Config, load_config
from nautilus_hmm.config.reload import ConfigManager
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import ConfigApplied, ConfigRejected


def setup(tmp_path: Path, text: str = "") -> tuple[Path, ConfigManager, list[object]]:
    p = tmp_path / "config.toml"
    p.write_text(text)
    bus, clock = Bus(), ManualClock()
    events: list[object] = []
    bus.subscribe(ConfigApplied, events.append)
    bus.subscribe(ConfigRejected, events.append)
    return p, ConfigManager(p, load_config(str(p)), bus, clock), events


def test_valid_reload_of_live_fields_applies_them_and_publishes(tmp_path: Path) -> None:
    p, mgr, events = setup(tmp_path)
    seen: list[Config] = []
    mgr.add_applier("probe", seen.append)
    old_hash = mgr.hash
    p.write_text('[log]\nlevel = "debug"\n[risk]\nmax_order_notional_usd = 100.0\n')
    r = mgr.reload("test")
    assert r.result == "applied"
    assert sorted(r.changed) == ["log.level", "risk.max_order_notional_usd"]
    assert mgr.current.log.level == "debug" and mgr.hash != old_hash
    assert seen and seen[0].risk.max_order_notional_usd == 100.0
    assert isinstance(events[-1], ConfigApplied) and events[-1].config_hash == mgr.hash


def test_invalid_reload_keeps_the_old_config_and_reports_errors(tmp_path: Path) -> None:
    p, mgr, events = setup(tmp_path)
    old = mgr.current
    p.write_text("[risk]\nmax_order_notional_usd = -1\n")
    r = mgr.reload("test")
    assert r.result == "invalid"
    assert r.errors == ["risk.max_order_notional_usd = -1: must be > 0"]
    assert mgr.current is old
    assert isinstance(events[-1], ConfigRejected) and events[-1].errors == tuple(r.errors)


def test_restart_only_change_rejects_the_whole_reload_naming_the_fields(tmp_path: Path) -> None:
    p, mgr, events = setup(tmp_path)
    old = mgr.current
    p.write_text('[http]\nport = 9999\n[log]\nlevel = "debug"\n')
    r = mgr.reload("test")
    assert r.result == "restart_required"
    assert r.restart_required == ["http.port"]
    assert mgr.current is old  # the live log.level change was not applied either
    assert isinstance(events[-1], ConfigRejected) and events[-1].restart_required == ("http.port",)


def test_failing_applier_rolls_back_the_ones_already_applied(tmp_path: Path) -> None:
    p, mgr, _ = setup(tmp_path)
    applied_levels: list[str] = []
    mgr.add_applier("first", lambda c: applied_levels.append(c.log.level))

    def broken(c: Config) -> None:
        raise ValueError("cannot apply")

    mgr.add_applier("second", broken)
    p.write_text('[log]\nlevel = "debug"\n')
    r = mgr.reload("test")
    assert r.result == "failed" and "second" in r.errors[0]
    assert applied_levels == ["debug", "info"]  # applied, then rolled back
    assert mgr.current.log.level == "info"


def test_unchanged_file_is_a_no_op(tmp_path: Path) -> None:
    _, mgr, events = setup(tmp_path)
    assert mgr.reload("test").result == "unchanged"
    assert events == []
