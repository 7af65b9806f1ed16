"""A notification channel whose URL is missing or of an unknown scheme stops the daemon's start
with one config line naming the field and the variable, never the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from nautilus_hmm.cli import main

NOTIFY = '[notify]\nenabled = true\n[notify.channels.ops]\n[notify.routes]\nfills = ["ops"]\n'


@pytest.fixture(autouse=True)
def logging_restored(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`run` configures structlog for the process; the previous configuration comes back."""
    saved = structlog.get_config()
    real = structlog.configure
    monkeypatch.setattr(structlog, "configure", lambda **kw: real(**{**kw, "cache_logger_on_first_use": False}))
    yield
    real(**saved)


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    for var in ("NAUTILUS_HMM_ADMIN_TOKEN", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
        monkeypatch.delenv(var, raising=False)
    p = tmp_path / "config.toml"
    p.write_text('[strategy]\nkind = "sma_cross"\n' + f'[node]\nstate_dir = "{tmp_path / "state"}"\n'
                 '[http]\nport = 0\n' + NOTIFY)
    code = main(["run", "--config", str(p), "--log-format", "console"])
    return code, capsys.readouterr().err


def test_an_unknown_url_scheme_stops_the_start_naming_field_and_variable(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_NOTIFY_OPS_URL", "foo://user:hunter22secret@example.org/x")
    code, err = run(tmp_path, capsys, monkeypatch)
    assert code == 78, err
    [line] = [x for x in err.splitlines() if "[critical" in x or "[error" in x]
    assert "notify.channels.ops" in line and "NAUTILUS_HMM_NOTIFY_OPS_URL" in line and "'foo'" in line
    assert "hunter22secret" not in err and "Traceback" not in err


def test_a_missing_url_stops_the_start_naming_where_it_is_read_from(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("NAUTILUS_HMM_NOTIFY_OPS_URL", raising=False)
    code, err = run(tmp_path, capsys, monkeypatch)
    assert code == 78, err
    assert "NAUTILUS_HMM_NOTIFY_OPS_URL" in err and "notify-ops-url" in err


def check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    p = tmp_path / "config.toml"
    p.write_text('[strategy]\nkind = "sma_cross"\n' + NOTIFY)
    code = main(["check-config", str(p)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_config_fails_on_an_unknown_scheme_in_this_environment(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_NOTIFY_OPS_URL", "foo://user:hunter22secret@example.org/x")
    code, out, err = check_config(tmp_path, capsys)
    assert code == 78 and "notify.channels.ops: $NAUTILUS_HMM_NOTIFY_OPS_URL" in err and "'foo'" in err
    assert "hunter22secret" not in out + err


def test_check_config_passes_with_a_note_when_the_url_is_not_in_this_environment(tmp_path, capsys,
                                                                                 monkeypatch) -> None:
    monkeypatch.delenv("NAUTILUS_HMM_NOTIFY_OPS_URL", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    code, out, err = check_config(tmp_path, capsys)
    assert code == 0 and "OK" in out and "notify.channels.ops: URL not checked" in err
