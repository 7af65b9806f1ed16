"""`[node] mode`: trade by default, monitor on request; a bad value is refused naming the
field and the value (check-config and the loader); a reload cannot switch it (restart-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nautilus_hmm.cli import EXIT_CONFIG, main
from nautilus_hmm.config import Config, ConfigError, load_config
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.reload import ConfigManager
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock


def test_the_default_mode_is_trade_and_monitor_is_accepted() -> None:
    assert parse(Config, {}).node.mode == "trade"
    assert parse(Config, {"node": {"mode": "monitor"}}).node.mode == "monitor"


@pytest.mark.parametrize(("value", "shown"), [("Monitor", '"Monitor"'), ("paper", '"paper"'), ("", '""'),
                                              ("monitor ", '"monitor "')])
def test_an_unknown_mode_names_the_field_and_the_value(value: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(Config, {"node": {"mode": value}})
    assert info.value.errors == [f"node.mode = {shown}: must be one of 'trade', 'monitor'"]


def test_a_mode_of_the_wrong_type_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse(Config, {"node": {"mode": True}})
    assert info.value.errors == ["node.mode = true: expected a string"]


def test_check_config_prints_the_bad_mode_and_exits_78(tmp_path: Path, capsys) -> None:
    p = tmp_path / "config.toml"
    p.write_text('[node]\nmode = "read-only"\n')
    assert main(["check-config", str(p)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert """node.mode = "read-only": must be one of 'trade', 'monitor'""" in err
    assert "Traceback" not in err


def test_a_reload_that_switches_the_mode_is_refused_as_restart_only(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_text('[node]\nmode = "monitor"\n')
    mgr = ConfigManager(p, load_config(str(p)), Bus(), ManualClock())
    p.write_text('[node]\nmode = "trade"\n')
    r = mgr.reload("test")
    assert r.result == "restart_required" and r.restart_required == ["node.mode"]
    assert mgr.current.node.mode == "monitor"
