"""A daemon that cannot start says why in one line naming the file, path or address and the
problem, stops what already started, closes its journal and exits 1 (78 for a config
error), with no traceback on stderr.

Each test runs `nautilus-hmm run` in-process (cli.main) on a damaged state directory; the
process boundary itself is covered by test_node_bind.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from nautilus_hmm.cli import main
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.start_failure import describe

SMA = '[strategy]\nkind = "sma_cross"\n'


@pytest.fixture(autouse=True)
def logging_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`run` configures structlog for the process; here loggers are not cached (a cached one
    would ignore later tests' capture_logs) and the previous configuration comes back."""
    saved = structlog.get_config()
    real = structlog.configure
    monkeypatch.setattr(structlog, "configure", lambda **kw: real(**{**kw, "cache_logger_on_first_use": False}))
    yield
    real(**saved)


def write_config(tmp_path: Path, extra: str = SMA) -> Path:
    """A config on a free loopback port with its state dir at tmp_path/state."""
    p = tmp_path / "config.toml"
    p.write_text(extra + f'[node]\nstate_dir = "{tmp_path / "state"}"\n[http]\nport = 0\n')
    return p


def run_failing(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                extra: str = SMA) -> tuple[int, list[str], str]:
    """Run the daemon; return its exit code, its error/critical lines and all of stderr."""
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    code = main(["run", "--config", str(write_config(tmp_path, extra)), "--log-format", "console"])
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if "[critical" in line or "[error" in line]
    return code, failed, err


def assert_journal_closed(state_dir: Path) -> None:
    """The journal's lock is free: a second open in this process succeeds."""
    path = state_dir / "journal.sqlite3"
    if path.exists():
        Journal.open(path).close()


def assert_one_clean_line(code: int, failed: list[str], err: str, *words: str, exit_code: int = 1) -> None:
    assert code == exit_code, err
    assert "Traceback" not in err, err
    assert len(failed) == 1, err
    for word in words:
        assert word in failed[0], failed[0]
    assert "hint=" in failed[0]


def test_a_file_where_the_state_dir_should_be_is_one_line_naming_it(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "state").write_text("not a directory\n")
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch)
    assert_one_clean_line(code, failed, err, str(tmp_path / "state"), "state_dir")
    assert (tmp_path / "state").read_text() == "not a directory\n"


def test_a_state_dir_under_a_file_is_one_line_naming_it(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "blocker").write_text("x")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "blocker" / "state"))
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN", raising=False)
    code = main(["run", "--config", str(write_config(tmp_path)), "--log-format", "console"])
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if "[critical" in line or "[error" in line]
    assert_one_clean_line(code, failed, err, str(tmp_path / "blocker"), "state_dir")


def test_a_corrupt_journal_is_one_line_naming_the_file_and_is_left_untouched(tmp_path, capsys, monkeypatch) -> None:
    state = tmp_path / "state"
    state.mkdir()
    junk = bytes(range(256)) * 20
    (state / "journal.sqlite3").write_bytes(junk)
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch)
    assert_one_clean_line(code, failed, err, str(state / "journal.sqlite3"), "not a SQLite database")
    assert (state / "journal.sqlite3").read_bytes() == junk


def test_a_journal_of_a_newer_schema_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch) -> None:
    state = tmp_path / "state"
    state.mkdir()
    Journal.open(state / "journal.sqlite3").close()
    import sqlite3

    conn = sqlite3.connect(state / "journal.sqlite3")
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch)
    assert_one_clean_line(code, failed, err, str(state / "journal.sqlite3"), "999")


@pytest.mark.parametrize("damage", ["truncated", "not_json", "flipped_bits", "wrong_shape"])
def test_a_damaged_paper_account_is_one_line_naming_the_file_and_started_parts_stop(
        tmp_path, capsys, monkeypatch, damage) -> None:
    # A first clean start writes the account; then it is damaged.
    state = tmp_path / "state"
    state.mkdir()
    account = state / "sim_account.json"
    good = json.dumps({"version": 1, "balances": {"USDT": "100000"}, "orders": [], "fills": []}).encode()
    damaged = {"truncated": good[: len(good) // 2], "not_json": b"\x00\x01garbage",
               "flipped_bits": bytes(b ^ 0x20 if i == 3 else b for i, b in enumerate(good)),
               "wrong_shape": b"[1, 2, 3]"}[damage]
    account.write_bytes(damaged)
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch)
    assert_one_clean_line(code, failed, err, str(account), "paper account")
    assert account.read_bytes() == damaged  # left as it was
    assert "component_stopped component=journal" in err and "component_stopped component=http" in err
    assert_journal_closed(state)


def test_a_journal_another_daemon_holds_is_one_line_saying_so(tmp_path, capsys, monkeypatch) -> None:
    state = tmp_path / "state"
    state.mkdir()
    other = Journal.open(state / "journal.sqlite3")  # the other daemon on this state dir
    try:
        code, failed, err = run_failing(tmp_path, capsys, monkeypatch)
    finally:
        other.close()
    assert_one_clean_line(code, failed, err, str(state / "journal.sqlite3"), "another nautilus-hmm")


def test_a_token_file_that_is_a_directory_is_one_line_naming_it(tmp_path, capsys, monkeypatch) -> None:
    token = tmp_path / "state" / "admin-token"
    token.mkdir(parents=True)
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch)
    assert_one_clean_line(code, failed, err, str(token), "directory", "NAUTILUS_HMM_ADMIN_TOKEN")
    assert_journal_closed(tmp_path / "state")


def test_an_unreachable_venue_at_start_is_one_line_naming_its_address(tmp_path, capsys, monkeypatch) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_KEY", "k")
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_SECRET", "s")
    extra = ('[strategy]\nkind = "sma_cross"\ninstruments = ["binance_spot:BTCUSDT"]\n'
             '[venues.sim]\nenabled = false\n'
             f'[venues.binance_spot]\nenabled = true\nrest_url = "http://127.0.0.1:{port}"\n'
             f'ws_url = "ws://127.0.0.1:{port}"\nsymbols = ["BTCUSDT"]\n')
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch, extra)
    assert_one_clean_line(code, failed, err, f"127.0.0.1:{port}", "binance_spot")
    assert_journal_closed(tmp_path / "state")


def test_a_damaged_replay_file_is_one_line_naming_the_file_and_line(tmp_path, capsys, monkeypatch) -> None:
    replay = tmp_path / "k.csv"
    replay.write_text("timestamp,open,high,low,close,volume\n2025-03-01 03:00:00,1,2,0.5,1.5,10\n2025-03-01 03:01:00,1,2,zz\n")
    extra = SMA + f'[venues.sim.market]\nsource = "replay"\nreplay_file = "{replay}"\n'
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch, extra)
    assert_one_clean_line(code, failed, err, f"{replay}:3")
    assert_journal_closed(tmp_path / "state")


def test_a_config_value_a_component_refuses_is_a_config_error_naming_the_field(tmp_path) -> None:
    exc = ValueError("venues.binance_spot.symbols: not tradable on Binance spot: FOOBAR")
    failure = describe(exc, tmp_path)
    assert failure.exit_code == 78 and failure.known
    assert failure.error == "config: venues.binance_spot.symbols: not tradable on Binance spot: FOOBAR"


def test_an_unexpected_start_error_is_one_line_calling_itself_a_bug(tmp_path) -> None:
    failure = describe(KeyError("x"), tmp_path)
    assert failure.exit_code == 1 and not failure.known
    assert failure.error == "KeyError: 'x'" and "bug" in failure.hint and "debug" in failure.hint


def test_a_failed_start_leaves_the_port_free(tmp_path, capsys, monkeypatch) -> None:
    token = tmp_path / "state" / "admin-token"
    token.mkdir(parents=True)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    cfg = tmp_path / "config.toml"
    cfg.write_text(SMA + f'[node]\nstate_dir = "{tmp_path / "state"}"\n[http]\nport = {port}\n')
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert main(["run", "--config", str(cfg), "--log-format", "console"]) == 1
    again = socket.socket()
    again.bind(("127.0.0.1", port))  # raises if the listener was left open
    again.close()
    assert os.listdir(tmp_path / "state")  # the state dir itself is kept


# ------------------------------------------------------------------ the model registry

HMM = '[strategy]\nkind = "hmm"\n'


def registry_with_production(tmp_path: Path) -> tuple[Path, str]:
    """state/models with one production model; returns the registry root and the model id."""
    from nautilus_hmm.hmm.registry import ModelRegistry
    from tests.unit.hmm.kit import decisive_model

    reg = ModelRegistry(tmp_path / "state" / "models")
    model_id = reg.add(decisive_model())
    reg.promote(model_id)
    return reg.root, model_id


@pytest.mark.parametrize("damage", ["truncated", "not_an_object"])
def test_a_damaged_tags_file_stops_the_start_naming_it_and_leaves_it_as_it_was(
        tmp_path, capsys, monkeypatch, damage) -> None:
    root, _ = registry_with_production(tmp_path)
    tags = root / "tags.json"
    damaged = tags.read_bytes()[:15] if damage == "truncated" else b"[1, 2]"
    tags.write_bytes(damaged)
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch, HMM)
    assert_one_clean_line(code, failed, err, str(tags), "tags file", "models promote")
    assert tags.read_bytes() == damaged
    assert_journal_closed(tmp_path / "state")


@pytest.mark.parametrize("damage", ["missing", "flipped_bits"])
async def test_a_damaged_production_model_is_one_error_naming_the_file_and_the_daemon_serves_on(
        tmp_path, monkeypatch, damage) -> None:
    # The daemon stays up: promote or roll back over its admin API is the fix.
    from structlog.testing import capture_logs

    from tests.nodeharness import running_node

    root, model_id = registry_with_production(tmp_path)
    model_file = root / model_id / "model.json"
    if damage == "missing":
        model_file.unlink()
    else:
        raw = bytearray(model_file.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        model_file.write_bytes(bytes(raw))
    tags_before = (root / "tags.json").read_bytes()
    with capture_logs() as logs:
        async with running_node(tmp_path, monkeypatch, HMM) as (node, url):
            assert node.status()["components"]["models"]["healthy"] is False
    errors = [e for e in logs if e["log_level"] in ("error", "critical")]
    assert [e["event"] for e in errors] == ["hmm_model_not_loaded"], errors
    assert str(model_file) in errors[0]["error"]
    assert (root / "tags.json").read_bytes() == tags_before


def test_a_directory_where_the_journal_file_should_be_is_one_line_naming_it(tmp_path, capsys, monkeypatch) -> None:
    journal = tmp_path / "state" / "journal.sqlite3"
    journal.mkdir(parents=True)
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch)
    assert_one_clean_line(code, failed, err, str(journal), "Is a directory", "must be a file")


def test_a_file_where_the_model_registry_dir_should_be_names_it_and_says_to_move_it(
        tmp_path, capsys, monkeypatch) -> None:
    models = tmp_path / "state" / "models"
    models.parent.mkdir()
    models.write_text("x")
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch, HMM)
    assert_one_clean_line(code, failed, err, str(models), f"move the file {models} aside")


def test_api_keys_the_venue_refuses_at_start_exit_78_naming_the_venue(tmp_path) -> None:
    # A restart would send the refused key again: systemd must not loop on it.
    from nautilus_hmm.core.errors import AuthError

    exc = AuthError("binance_spot", "HTTP 401: Invalid API-key, IP, or permissions for action.", "-2015")
    failure = describe(exc, tmp_path, {"binance_spot": "http://127.0.0.1:18765"})
    assert failure.exit_code == 78
    assert failure.error.startswith("venue binance_spot at http://127.0.0.1:18765 refused the API key")
    assert "credential" in failure.hint


def test_a_journal_that_fails_to_close_after_a_failed_start_still_frees_the_port(
        tmp_path, capsys, monkeypatch) -> None:
    # Cleanup after a failed start goes on past a step that fails; each failure is named.
    real_aclose = Journal.aclose

    async def fails(self: Journal) -> None:
        await real_aclose(self)  # closed, then the failure is reported (no journal left open here)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Journal, "aclose", fails)
    token = tmp_path / "state" / "admin-token"
    token.mkdir(parents=True)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    cfg = tmp_path / "config.toml"
    cfg.write_text(SMA + f'[node]\nstate_dir = "{tmp_path / "state"}"\n[http]\nport = {port}\n')
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert main(["run", "--config", str(cfg), "--log-format", "console"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    (line,) = [x for x in err.splitlines() if "node_abort_step_failed" in x]
    assert "step=journal" in line and "No space left on device" in line
    again = socket.socket()
    again.bind(("127.0.0.1", port))  # the listener was closed after the journal's failure
    again.close()


def test_a_state_dir_this_user_cannot_write_is_named_with_the_fix(tmp_path) -> None:
    # As root (CI) a mode cannot deny the write: the error the node meets is built here.
    state = tmp_path / "state"
    failure = describe(PermissionError(13, "Permission denied", str(state)), state)
    assert failure.error == f"state directory {state}: Permission denied"
    assert "owner or mode" in failure.hint and "state_dir" in failure.hint and failure.exit_code == 1


def test_an_http_host_that_is_not_this_machines_exits_78_saying_so(tmp_path, capsys, monkeypatch) -> None:
    extra = SMA + '[http]\nhost = "192.0.2.1"\n'  # TEST-NET-1: never an address of this machine
    cfg = tmp_path / "config.toml"
    cfg.write_text(extra + f'[node]\nstate_dir = "{tmp_path / "state"}"\n')
    code = main(["run", "--config", str(cfg), "--log-format", "console"])
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if "[critical" in line or "[error" in line]
    assert_one_clean_line(code, failed, err, "192.0.2.1:8080", "not an address of this machine", exit_code=78)
    assert not (tmp_path / "state").exists()


def test_a_privileged_http_port_is_a_config_error_naming_it() -> None:
    import errno

    from nautilus_hmm.start_failure import bind_failure

    failure = bind_failure(PermissionError(errno.EACCES, "Permission denied"), "127.0.0.1:80")
    assert failure.exit_code == 78 and failure.error == "http 127.0.0.1:80: Permission denied"
    assert "1024" in failure.hint


def test_sigterm_during_a_long_start_stops_what_started_and_exits_0(tmp_path, capsys, monkeypatch) -> None:
    # The venue accepts the connection and never answers: the start waits on it. SIGTERM
    # (sent once the venue's connection is accepted, no sleeping) ends the wait at once.
    import signal
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    held: list[socket.socket] = []

    def accept_then_terminate() -> None:
        conn, _ = silent.accept()
        held.append(conn)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=accept_then_terminate, daemon=True).start()
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_KEY", "k")
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_SECRET", "s")
    extra = ('[strategy]\nkind = "sma_cross"\ninstruments = ["binance_spot:BTCUSDT"]\n'
             '[venues.sim]\nenabled = false\n'
             f'[venues.binance_spot]\nenabled = true\nrest_url = "http://127.0.0.1:{port}"\n'
             f'ws_url = "ws://127.0.0.1:{port}"\nsymbols = ["BTCUSDT"]\nrequest_timeout_s = 30.0\n')
    try:
        code, failed, err = run_failing(tmp_path, capsys, monkeypatch, extra)
    finally:
        for conn in held:
            conn.close()
        silent.close()
    assert code == 0, err
    assert failed == [] and "Traceback" not in err
    assert "node_start_abandoned" in err and "component_stopped component=journal" in err
    assert_journal_closed(tmp_path / "state")


def test_a_token_file_that_is_not_text_is_one_line_naming_it(tmp_path, capsys, monkeypatch) -> None:
    token = tmp_path / "state" / "admin-token"
    token.parent.mkdir()
    token.write_bytes(b"\xff\xfe\x00\x01")
    code, failed, err = run_failing(tmp_path, capsys, monkeypatch)
    assert_one_clean_line(code, failed, err, str(token), "not UTF-8 text")
    assert "xff" not in err  # not even one byte of a token is shown
    assert token.read_bytes() == b"\xff\xfe\x00\x01"


@pytest.mark.parametrize("damage", ["directory", "not_text"])
def test_a_damaged_admin_token_credential_is_one_line_naming_it(tmp_path, capsys, monkeypatch, damage) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    if damage == "directory":
        (creds / "admin-token").mkdir()
    else:
        (creds / "admin-token").write_bytes(b"\xff\xfe")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    code = main(["run", "--config", str(write_config(tmp_path)), "--log-format", "console"])
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if "[critical" in line or "[error" in line]
    assert_one_clean_line(code, failed, err, str(creds / "admin-token"), "credential")


def test_a_build_failure_after_the_journal_opened_closes_it(tmp_path, capsys, monkeypatch) -> None:
    # state/models is a file: the model service fails to build after the journal opened.
    models = tmp_path / "state" / "models"
    models.parent.mkdir()
    models.write_text("x")
    run_failing(tmp_path, capsys, monkeypatch, HMM)
    assert_journal_closed(tmp_path / "state")


@pytest.mark.parametrize("step", ["build_venues", "build_stack", "build_model_service", "WebServer"])
def test_a_node_whose_build_fails_after_the_journal_opened_leaves_it_closed(tmp_path, monkeypatch, step) -> None:
    from nautilus_hmm import node as node_module
    from nautilus_hmm.config import load_config

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{step} failed")

    monkeypatch.setattr(node_module, step, broken)
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", "t" * 32)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = write_config(tmp_path, HMM)
    with pytest.raises(RuntimeError, match=f"{step} failed"):
        node_module.Node(load_config(str(path)), path)
    assert (tmp_path / "state" / "journal.sqlite3").exists()
    assert_journal_closed(tmp_path / "state")


def test_a_venue_credential_that_is_not_text_is_one_line_naming_it_not_its_content(
        tmp_path, capsys, monkeypatch) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "binance-api-key").write_bytes(b"s3cretKey\xff")
    (creds / "binance-api-secret").write_text("s3cretSecret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    binance = ('[venues.sim]\nenabled = false\n[venues.binance_spot]\nenabled = true\nsymbols = ["BTCUSDT"]\n'
               'rest_url = "http://127.0.0.1:9"\nws_url = "ws://127.0.0.1:9"\n'
               '[strategy]\nkind = "sma_cross"\ninstruments = ["binance_spot:BTCUSDT"]\n')
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", "t" * 32)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    code = main(["run", "--config", str(write_config(tmp_path, binance)), "--log-format", "console"])
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if "[critical" in line or "[error" in line]
    assert_one_clean_line(code, failed, err, str(creds / "binance-api-key"), "not UTF-8 text")
    assert "s3cret" not in err and "xff" not in err
    assert_journal_closed(tmp_path / "state")
