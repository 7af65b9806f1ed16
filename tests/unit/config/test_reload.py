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


def test_appliers_run_with_the_new_config_already_current(tmp_path: Path) -> None:
    p, mgr, _ = setup(tmp_path)
    seen_current: list[tuple[str, str]] = []
    mgr.add_applier("probe", lambda c: seen_current.append((c.log.level, mgr.current.log.level)))
    p.write_text('[log]\nlevel = "debug"\n')
    assert mgr.reload("test").result == "applied"
    assert seen_current == [("debug", "debug")]  # pull-style readers see what the applier got


def test_failing_applier_restores_the_old_config_as_current_for_the_rollback(tmp_path: Path) -> None:
    p, mgr, _ = setup(tmp_path)
    old, old_hash = mgr.current, mgr.hash
    during_rollback: list[str] = []
    mgr.add_applier("first", lambda c: during_rollback.append(mgr.current.log.level))

    def broken(c: Config) -> None:
        raise ValueError("cannot apply")

    mgr.add_applier("second", broken)
    p.write_text('[log]\nlevel = "debug"\n')
    r = mgr.reload("test")
    assert r.result == "failed" and r.config_hash == old_hash
    assert during_rollback == ["debug", "info"]
    assert mgr.current is old and mgr.hash == old_hash


def test_a_hash_that_cannot_be_computed_fails_the_reload_before_any_applier_runs(tmp_path: Path, monkeypatch) -> None:
    import nautilus_hmm.config.reload as reload_mod

    p, mgr, events = setup(tmp_path)
    old, old_hash = mgr.current, mgr.hash
    applied: list[str] = []
    mgr.add_applier("probe", lambda c: applied.append(c.log.level))

    def unhashable(cfg: Config) -> str:
        raise TypeError("Integer exceeds 64-bit range")

    monkeypatch.setattr(reload_mod, "config_hash", unhashable)
    p.write_text('[log]\nlevel = "debug"\n')
    r = mgr.reload("test")
    assert r.result == "failed" and "Integer exceeds 64-bit range" in r.errors[0]
    assert applied == []  # nothing was applied: the failure came first
    assert mgr.current is old and mgr.hash == old_hash
    assert isinstance(events[-1], ConfigRejected)


def test_an_unexpected_error_while_reloading_is_a_failed_result_not_an_exception(tmp_path: Path, monkeypatch) -> None:
    import nautilus_hmm.config.reload as reload_mod

    p, mgr, _ = setup(tmp_path)
    old = mgr.current

    def broken_load(cls: type, path: object) -> Config:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(reload_mod, "load", broken_load)
    r = mgr.reload("test")
    assert r.result == "failed" and "maximum recursion depth" in r.errors[0]
    assert mgr.current is old


def test_a_whole_number_above_int64_is_invalid_and_nothing_is_applied(tmp_path: Path) -> None:
    p, mgr, _ = setup(tmp_path)
    old, old_hash = mgr.current, mgr.hash
    applied: list[Config] = []
    mgr.add_applier("probe", applied.append)
    p.write_text('[log]\nlevel = "debug"\n[risk]\norder_burst = 18446744073709551616\n')
    r = mgr.reload("test")
    assert r.result == "invalid"
    assert r.errors == ["risk.order_burst = 18446744073709551616: must be <= 100000"]
    assert applied == [] and mgr.current is old and mgr.hash == old_hash


def test_an_applier_that_fails_half_way_gets_the_old_config_back_too(tmp_path: Path) -> None:
    p, mgr, _ = setup(tmp_path)
    state = {"level": "info"}

    def half_applies(c: Config) -> None:
        state["level"] = c.log.level  # one part applied ...
        if c.log.level == "debug":
            raise RuntimeError("... the next part failed")

    mgr.add_applier("half", half_applies)
    p.write_text('[log]\nlevel = "debug"\n')
    assert mgr.reload("test").result == "failed"
    assert state["level"] == "info"


def test_a_reload_of_a_config_file_that_cannot_be_read_names_the_file(tmp_path: Path) -> None:
    p, mgr, events = setup(tmp_path)
    p.unlink()
    p.mkdir()  # read_bytes: Is a directory
    r = mgr.reload("test")
    assert r.result == "invalid"
    assert r.errors == [f"cannot read config file {p}: Is a directory"]
    assert isinstance(events[-1], ConfigRejected) and events[-1].errors == tuple(r.errors)


def test_a_reload_of_a_config_file_that_is_not_toml_or_not_text_names_the_file(tmp_path: Path) -> None:
    p, mgr, _ = setup(tmp_path)
    p.write_text("[log\n")
    [error] = mgr.reload("test").errors
    assert error.startswith(f"config file {p} is not valid TOML: ")
    p.write_bytes(b"\xff\xfe[log]\n")
    [error] = mgr.reload("test").errors
    assert error.startswith(f"config file {p} is not UTF-8 text: ")
