"""The `nautilus-hmm` command line: usage errors, help, the admin client's edges."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.cli import main
from tests.conftest import REPO


class AdminStub:
    """A loopback HTTP server standing in for the daemon's admin API."""

    def __init__(self, status: int = 200, body: bytes = b'{"ok": true}',
                 content_type: str = "application/json") -> None:
        self.status, self.body, self.content_type = status, body, content_type
        self.seen: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub.seen.append((self.command, self.path, self.headers.get("Authorization")))
                self.send_response(stub.status)
                self.send_header("Content-Type", stub.content_type)
                self.send_header("Content-Length", str(len(stub.body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(stub.body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll: shutdown() returns within 10 ms, not serve_forever's default 0.5 s.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> AdminStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_token_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("NAUTILUS_HMM_ADMIN_TOKEN", "NAUTILUS_HMM_ADMIN_TOKEN_FILE", "NAUTILUS_HMM_ADMIN_URL"):
        monkeypatch.delenv(name, raising=False)
    yield


def test_emulator_help_exits_0_and_lists_the_emulators(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["emulator", "--help"])
    assert info.value.code == 0
    assert "binance" in capsys.readouterr().out


def test_emulator_options_help_is_the_emulators_own(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["emulator", "binance", "--help"])
    assert info.value.code == 0
    assert "--api-key" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["ctl", "status", "--url", "{url}", "--token", "tok"],
                                  ["ctl", "--url", "{url}", "status", "--token", "tok"],
                                  ["ctl", "kill", "--reason", "x", "--url", "{url}", "--token", "tok"],
                                  ["models", "list", "--url", "{url}", "--token", "tok"]])
def test_client_options_are_accepted_before_and_after_the_action(argv: list[str], no_token_env: None,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with AdminStub() as stub:
        assert main([a.replace("{url}", stub.url) for a in argv]) == 0
    assert stub.seen and stub.seen[0][2] == "Bearer tok"


@pytest.mark.parametrize(("command", "actions"), [("models", "list"), ("ctl", "status")])
def test_a_missing_action_names_the_actions_not_an_internal_name(
        command: str, actions: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert actions in err and "_action" not in err and "action" not in err.replace("ACTION", "")


def test_a_401_without_a_token_names_every_place_the_token_was_looked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_token_env: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with AdminStub(401, b'{"error": "missing or invalid bearer token"}') as stub:
        assert main(["ctl", "--url", stub.url, "status"]) == 4  # authentication
    err = capsys.readouterr().err
    assert str(tmp_path / "state" / "admin-token") in err and "not found" in err
    assert "--token" in err and "NAUTILUS_HMM_ADMIN_TOKEN" in err


def test_a_refused_token_names_where_it_came_from(
        tmp_path: Path, no_token_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "tok"
    token_file.write_text("stale\n")
    os.chmod(token_file, 0o600)
    with AdminStub(401, b'{"error": "missing or invalid bearer token"}') as stub:
        assert main(["ctl", "--url", stub.url, "--token-file", str(token_file), "status"]) == 4
    assert stub.seen[0][2] == "Bearer stale"
    assert f"the token from {token_file} was refused" in capsys.readouterr().err


def test_a_token_file_readable_by_others_is_used_with_a_warning(
        tmp_path: Path, no_token_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "tok"
    token_file.write_text("tok\n")
    os.chmod(token_file, 0o644)
    with AdminStub() as stub:
        assert main(["ctl", "--url", stub.url, "--token-file", str(token_file), "status"]) == 0
    assert stub.seen[0][2] == "Bearer tok"
    err = capsys.readouterr().err
    assert str(token_file) in err and f"chmod 600 {token_file}" in err


def test_output_cut_short_by_the_reader_ends_quietly(no_token_env: None) -> None:
    # `nautilus-hmm ctl status | head`: the reader closes the pipe after a few lines.
    big = orjson.dumps({"rows": [{"i": i, "text": "x" * 40} for i in range(40000)]})
    with AdminStub(body=big) as stub:
        proc = subprocess.Popen([sys.executable, "-m", "nautilus_hmm", "ctl", "--url", stub.url, "--token", "t",
                                 "status"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=30)
    assert "Traceback" not in err and err == ""
    assert code == 141  # 128 + SIGPIPE, what a shell reports for a writer cut off by its reader


@pytest.mark.parametrize(("argv", "hint"), [
    (["models", "list"], 'kind = "hmm"'),
    (["ctl", "status"], "--url"),
])
def test_a_route_the_daemon_does_not_have_is_explained(argv: list[str], hint: str, no_token_env: None,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # aiohttp's own 404 (no such route): a daemon without the models API, or a --url with a path.
    with AdminStub(404, b'{"error": "Not Found"}') as stub:
        assert main([*argv, "--url", stub.url + "/status", "--token", "t"]) == 1
    err = capsys.readouterr().err
    assert f"{stub.url}/status has no route" in err and hint in err
