"""`ctl` exit codes and what an operator sees when things go wrong: one line on stderr, never
a traceback; answers of a shape the views do not know are printed as they came; a damaged
event stream ends cleanly. Against loopback stand-ins of the daemon."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.admin_client import (
    EXIT_CODES_HELP,
    SseEvent,
    SseParser,
    TokenSource,
    warn_cleartext,
)
from nautilus_hmm.cli import main
from tests.conftest import REPO
from tests.unit.test_cli import AdminStub

SSE = "text/event-stream"
VARS = ("NAUTILUS_HMM_ADMIN_TOKEN", "NAUTILUS_HMM_ADMIN_TOKEN_FILE", "NAUTILUS_HMM_ADMIN_URL", "CREDENTIALS_DIRECTORY",
        "STATE_DIRECTORY")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err, cap.err
    return code, cap.out, cap.err


# ------------------------------------------------------------------ exit codes


@pytest.mark.parametrize(("status", "body", "code", "message"), [
    (400, b'{"error": "reason: expected a string, got 5"}', 1, "error: reason: expected a string, got 5"),
    (404, b'{"error": "unknown strategy \'x\'", "known": ["a", "b"]}', 1, "error: unknown strategy 'x' (known: a, b)"),
    (500, b'{"error": "kill failed: boom"}', 1, "error: kill failed: boom"),
    (401, b'{"error": "missing or invalid bearer token"}', 4, "the token from --token was refused"),
    (403, b'{"error": "forbidden"}', 4, "error: forbidden"),
    (409, b'{"error": "the node is in monitor mode: flatten sends orders; set [node] mode = \\"trade\\" and '
          b'restart"}', 5, "error: the node is in monitor mode"),
])
def test_an_error_answer_has_its_exit_code_and_the_servers_message(status, body, code, message, capsys) -> None:
    with AdminStub(status, body) as stub:
        got, out, err = run(["ctl", "kill", "--flatten", "--url", stub.url, "--token", "t"], capsys)
    assert got == code and message in err and out == ""


def test_a_reload_that_needs_a_restart_is_exit_5_listing_the_fields(capsys) -> None:
    body = orjson.dumps({"result": "restart_required", "config_hash": "ab", "changed": ["http.port"],
                         "restart_required": ["http.port"]})
    with AdminStub(409, body) as stub:
        code, _, err = run(["ctl", "reload", "--url", stub.url, "--token", "t"], capsys)
    assert code == 5 and err.splitlines() == ["error: restart_required", "restart required:", "  http.port"]


def test_an_invalid_config_on_reload_lists_each_error(capsys) -> None:
    body = orjson.dumps({"result": "invalid", "config_hash": "ab", "changed": [],
                         "errors": ["risk.max_order_usd = -1: must be >= 0", "log.level = 'loud': not one of ..."]})
    with AdminStub(400, body) as stub:
        code, _, err = run(["ctl", "reload", "--url", stub.url, "--token", "t"], capsys)
    assert code == 1 and "  risk.max_order_usd = -1: must be >= 0" in err.splitlines()


def test_json_of_an_error_answer_is_printed_and_keeps_the_exit_code(capsys) -> None:
    with AdminStub(409, b'{"error": "monitor mode"}') as stub:
        code, out, _ = run(["ctl", "--json", "kill", "--url", stub.url, "--token", "t"], capsys)
    assert code == 5 and orjson.loads(out) == {"error": "monitor mode"}


def test_a_daemon_that_is_down_is_one_line_naming_the_url_exit_3(capsys) -> None:
    with AdminStub() as stub:
        url = stub.url  # closed when the block ends: nothing listens there now
    code, out, err = run(["ctl", "positions", "--url", url], capsys)
    assert code == 3 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"cannot reach {url}/positions: ")


def test_a_daemon_that_never_answers_is_exit_3_after_the_timeout(capsys) -> None:
    with socket.socket() as listener:  # accepts connections (the backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        code, _, err = run(["ctl", "status", "--url", url, "--timeout", "0.2"], capsys)
    assert code == 3 and "no answer" in err and "timed out" in err


@pytest.mark.parametrize(("argv", "named"), [
    (["fills", "--since", "yesterday"], "'yesterday': expected ns since the epoch"),
    (["fills", "--since", "2026-13-01"], "'2026-13-01'"),
    (["fills", "--limit", "0"], "'0': must be an integer from 1 to 10000"),
    (["orders", "--limit", "lots"], "'lots'"),
    (["events", "--count", "-1"], "'-1'"),
    (["positions", "--bogus"], "--bogus"),
    (["nosuch"], "nosuch"),
])
def test_usage_errors_are_exit_2_naming_the_value(argv, named, capsys) -> None:
    code, _, err = run(["ctl", *argv, "--url", "http://127.0.0.1:1"], capsys)
    assert code == 2 and named in err


def test_since_takes_an_age_an_iso_time_or_ns(capsys) -> None:
    with AdminStub(200, b'{"fills": [], "next_since": 0}') as stub:
        for since, expected in (("1700000000000000000", "since=1700000000000000000"),
                                ("2023-11-14T22:13:20Z", "since=1700000000000000000"),
                                ("2023-11-14T23:13:20+01:00", "since=1700000000000000000"),
                                ("2023-11-14 22:13:20", "since=1700000000000000000")):
            assert run(["ctl", "fills", "--since", since, "--url", stub.url], capsys)[0] == 0
            assert stub.seen[-1][1] == f"/fills?{expected}"
        assert run(["ctl", "fills", "--since", "15m", "--url", stub.url], capsys)[0] == 0
    since_ns = int(stub.seen[-1][1].split("since=")[1])
    assert since_ns > 1_700_000_000 * 10**9  # 15 minutes before now, not before the epoch


def test_the_help_epilog_documents_the_exit_codes(capsys) -> None:
    code, out, _ = run(["ctl", "--help"], capsys)
    assert code == 0 and EXIT_CODES_HELP.strip() in out
    for line in ("3   the daemon cannot be reached", "4   authentication", "5   conflict (409)"):
        assert line in out


# ------------------------------------------------------------------ answers of an unknown shape


@pytest.mark.parametrize("action", ["status", "positions", "orders", "fills", "regimes", "models", "strategies",
                                    "allocations", "governance", "kill", "reload"])
@pytest.mark.parametrize("body", [b"{}", b'{"positions": "x", "orders": 3, "fills": null, "instruments": [1]}',
                                  b'{"trading_state": {"nested": true}, "models": [{}]}'])
def test_a_view_of_an_unknown_shape_is_the_json_not_a_traceback(action, body, capsys) -> None:
    with AdminStub(200, body) as stub:
        code, out, _ = run(["ctl", action, "--url", stub.url, "--token", "t"], capsys)
    assert code == 0 and out.strip()
    with contextlib.suppress(orjson.JSONDecodeError):  # either a view or the JSON itself
        assert orjson.loads(out) == orjson.loads(body)


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"", b"[1, 2]", b'"text"'])
def test_an_answer_that_is_not_an_object_is_printed_as_it_came(body, capsys) -> None:
    with AdminStub(200, body) as stub:
        code, out, _ = run(["ctl", "positions", "--url", stub.url], capsys)
    assert code == 0 and out.strip() == (body.decode() if not body.startswith((b"[", b'"'))
                                         else orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode())


# ------------------------------------------------------------------ the event stream


def test_sse_parser_reads_events_comments_crlf_and_multiline_data() -> None:
    p = SseParser()
    lines = [": connected", "", "event: FillReport", "data: {\"a\": 1}", "", "event: X\r", "data: one", "data: two",
             "", ": keepalive", "", "data: no name", "", "id: 7", "retry: 100", ""]
    got = [e for e in (p.feed(line.rstrip("\r")) for line in lines) if e is not None]
    assert got == [SseEvent("FillReport", '{"a": 1}'), SseEvent("X", "one\ntwo"), SseEvent("message", "no name")]
    assert p.last_event_id == "7"  # sent back as Last-Event-ID when the tail reconnects
    p.feed("id: 8\0")  # an id with a NUL is ignored (the SSE rules)
    p.feed("")
    assert p.last_event_id == "7"


def test_a_stream_cut_mid_event_prints_what_came_and_exits_3_without_reconnect(capsys) -> None:
    stream = (b": connected\n\nevent: TradingStateChanged\ndata: {\"type\": \"TradingStateChanged\", \"new\": \"HALTED\", "
              b"\"ts_event_ns\": 1700000000000000000}\n\nevent: Odd\ndata: not json at all\n\n"
              b"event: FillReport\ndata: {\"type\": \"Fill")
    with AdminStub(200, stream, SSE) as stub:
        code, out, err = run(["ctl", "events", "--no-reconnect", "--url", stub.url, "--token", "t"], capsys)
    lines = out.splitlines()
    assert code == 3 and f"the daemon closed the event stream ({stub.url}/events)" in err
    assert lines[0] == "22:13:20.000  TradingStateChanged  new=HALTED"
    assert lines[1] == "--:--:--.---  Odd  not json at all" and len(lines) == 2


def test_json_lines_of_a_stream_are_the_data_lines_verbatim(capsys) -> None:
    data = b'{"type":"FillReport","qty":"0.01000","ts_event_ns":1}'
    with AdminStub(200, b"event: FillReport\ndata: " + data + b"\n\n", SSE) as stub:
        code, out, _ = run(["ctl", "events", "--json", "--no-reconnect", "--url", stub.url, "--token", "t"], capsys)
    assert code == 3 and out == data.decode() + "\n"


class EndlessStream:
    """A server whose /events answers 200 with one event, then keeps the stream open."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(b'event: Hello\ndata: {"type": "Hello"}\n\n')
                self.wfile.flush()
                outer.connected.set()
                with contextlib.suppress(OSError):
                    while self.rfile.read(1):  # until the client goes away
                        pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endless() -> Iterator[EndlessStream]:
    s = EndlessStream()
    yield s
    s.close()


def test_ctrl_c_ends_an_event_tail_with_exit_0_and_no_traceback(endless: EndlessStream) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "nautilus_hmm", "ctl", "events", "--url", endless.url, "--token",
                             "t"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert proc.stdout is not None
        assert endless.connected.wait(30), "ctl events did not connect"
        assert "Hello" in proc.stdout.readline()  # printed (and flushed) while the stream stays open
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err


class RestartingStream:
    """A stand-in of the daemon's /events that the test stops and starts again on the same port.

    Each GET takes the next answer of `answers`: bytes (an event stream, then the connection
    closes: the daemon went away) or an HTTP status (an error body). Request headers are kept."""

    def __init__(self, answers: list[bytes | int]) -> None:
        self.answers = list(answers)
        self.headers: list[dict[str, str]] = []
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.headers.append(dict(self.headers.items()))
                answer = outer.answers.pop(0)
                if isinstance(answer, int):
                    body = b'{"error": "refused"}'
                    self.send_response(answer)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", SSE)
                self.end_headers()
                self.wfile.write(answer)  # then the handler returns: the connection closes

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # SO_REUSEADDR: the same port again
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()

    def stop(self) -> None:
        """The daemon is down: the port refuses connections."""
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None


class Waits:
    """ctl's backoff wait (admin_client.SLEEP), replaced: records each delay and runs the test's
    step for that wait instead of sleeping."""

    def __init__(self, steps: dict[int, Callable[[], None]]) -> None:
        self.delays: list[float] = []
        self.steps = steps

    def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)
        step = self.steps.get(len(self.delays))
        if step is not None:
            step()
        assert len(self.delays) < 20, "ctl events kept reconnecting"


def event(name: str, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n".encode() if event_id is not None else b""
    return head + f'event: {name}\ndata: {{"type": "{name}"}}\n\n'.encode()


def test_events_reconnect_after_the_daemon_restarts_with_backoff_and_last_event_id(monkeypatch, capsys) -> None:
    srv = RestartingStream([b": connected\n\n" + event("First", "41") + event("Second", "42"),
                            b": connected\n\n" + event("Third")])
    try:
        # the stream closed (the daemon stopped): wait 1 finds the port closed, wait 2 brings it back
        waits = Waits({1: srv.stop, 2: srv.start})
        monkeypatch.setattr("nautilus_hmm.admin_client.SLEEP", waits)
        code, out, err = run(["ctl", "events", "--count", "3", "--url", srv.url, "--token", "t"], capsys)
    finally:
        if srv.server is not None:
            srv.stop()
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines()] == ["First", "Second", "Third"]
    assert waits.delays == [0.5, 1.0]  # doubling after the refused attempt
    assert "Last-Event-ID" not in srv.headers[0] and srv.headers[1]["Last-Event-ID"] == "42"
    assert srv.headers[1]["Authorization"] == "Bearer t"
    lines = err.splitlines()
    assert lines[0] == f"the daemon closed the event stream ({srv.url}/events); reconnecting (events sent while " \
                       "disconnected are not shown; --no-reconnect exits instead)"
    assert lines[1].startswith(f"cannot reach {srv.url}/events:") and lines[1].endswith("(attempt 1; next in 1 s)")
    assert lines[2] == f"reconnected to {srv.url}/events (attempt 2), resuming after event id 42"


def test_events_reconnect_again_after_a_second_restart_from_the_first_delay(monkeypatch, capsys) -> None:
    srv = RestartingStream([event("A"), 503, event("B"), event("C")])
    waits = Waits({})
    monkeypatch.setattr("nautilus_hmm.admin_client.SLEEP", waits)
    try:
        code, out, err = run(["ctl", "events", "--count", "3", "--json", "--url", srv.url, "--token", "t"], capsys)
    finally:
        srv.stop()
    assert code == 0, err
    assert [orjson.loads(line)["type"] for line in out.splitlines()] == ["A", "B", "C"]
    # closed -> 0.5 (503: a start not serving yet) -> 1.0 -> B, closed -> 0.5 again -> C
    assert waits.delays == [0.5, 1.0, 0.5]
    assert f"{srv.url}/events answered HTTP 503 (attempt 1; next in 1 s)" in err
    assert "Last-Event-ID" not in srv.headers[-1]  # the daemon's stream carries no ids


def test_a_token_refused_after_a_restart_ends_the_tail_with_exit_4(monkeypatch, capsys) -> None:
    srv = RestartingStream([event("A"), 401])
    waits = Waits({})
    monkeypatch.setattr("nautilus_hmm.admin_client.SLEEP", waits)
    try:
        code, _, err = run(["ctl", "events", "--url", srv.url, "--token", "t"], capsys)
    finally:
        srv.stop()
    assert code == 4 and waits.delays == [0.5] and srv.answers == []
    assert "the token from --token was refused" in err


def test_no_reconnect_exits_3_when_the_stream_closes_and_never_waits(monkeypatch, capsys) -> None:
    srv = RestartingStream([event("A"), event("B")])
    waits = Waits({})
    monkeypatch.setattr("nautilus_hmm.admin_client.SLEEP", waits)
    try:
        code, _, err = run(["ctl", "events", "--no-reconnect", "--url", srv.url, "--token", "t"], capsys)
    finally:
        srv.stop()
    assert code == 3 and waits.delays == [] and len(srv.headers) == 1
    assert err.strip() == f"the daemon closed the event stream ({srv.url}/events)"


def test_ctrl_c_while_waiting_to_reconnect_ends_the_tail_with_exit_0(monkeypatch, capsys) -> None:
    srv = RestartingStream([event("A")])

    def interrupted(delay_s: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("nautilus_hmm.admin_client.SLEEP", interrupted)
    try:
        code, out, err = run(["ctl", "events", "--url", srv.url, "--token", "t"], capsys)
    finally:
        srv.stop()
    assert code == 0 and out.split()[1] == "A" and "reconnecting" in err


def test_a_daemon_down_at_the_first_connect_is_exit_3_at_once(monkeypatch, capsys) -> None:
    srv = RestartingStream([])
    srv.stop()  # nothing listens on the port
    waits = Waits({})
    monkeypatch.setattr("nautilus_hmm.admin_client.SLEEP", waits)
    code, _, err = run(["ctl", "events", "--url", srv.url, "--token", "t"], capsys)
    assert code == 3 and waits.delays == [] and f"cannot reach {srv.url}/events" in err


# ------------------------------------------------------------------ the token on the wire, the daemon's imports


@pytest.mark.parametrize(("base", "warned"), [("http://127.0.0.1:8080", False), ("http://127.0.0.2:8080", False),
                                              ("http://localhost:8080", False), ("http://[::1]:8080", False),
                                              ("https://trader.example:8443", False),
                                              ("http://trader.example:8080", True), ("http://10.0.0.5:8080", True)])
def test_a_token_over_plain_http_to_another_host_is_warned_about(base, warned, capsys) -> None:
    warn_cleartext(base, TokenSource("secret-token", "--token"))
    err = capsys.readouterr().err
    assert ("goes over plain http" in err) is warned and "secret-token" not in err


def test_no_token_no_warning(capsys) -> None:
    warn_cleartext("http://trader.example:8080", TokenSource(None, "nowhere"))
    assert capsys.readouterr().err == ""


def test_the_command_line_module_does_not_load_rich_until_a_view_is_printed() -> None:
    # `nautilus-hmm run` imports cli: the daemon keeps rich (and shtab) out of its memory.
    code = "import sys, nautilus_hmm.cli; print(sorted(m for m in ('rich', 'shtab') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                         check=True).stdout
    assert out.strip() == "[]"


def test_ctl_parses_alone_exactly_as_in_the_full_parser(capsys) -> None:
    from nautilus_hmm.cli import build_ctl_parser, build_parser

    argv = ["ctl", "--json", "fills", "--since", "15m", "--limit", "5", "--url", "http://127.0.0.1:1"]
    alone, full = vars(build_ctl_parser().parse_args(argv)), vars(build_parser().parse_args(argv))
    assert abs(alone.pop("since") - full.pop("since")) < 60 * 10**9  # "15m ago", taken a moment apart
    assert alone == full
    for parser in (build_ctl_parser(), build_parser()):
        with pytest.raises(SystemExit):
            parser.parse_args(["ctl", "positions", "--help"])
    help_alone, help_full = capsys.readouterr().out.split("usage: ")[1:]
    assert help_alone == help_full


def test_a_ctl_call_does_not_import_the_other_commands_packages() -> None:
    code = ("import sys; from nautilus_hmm.cli import main; main(['ctl', '--url', 'http://127.0.0.1:1', 'status']); "
            "print(sorted(m for m in ('numpy', 'nautilus_hmm.evaluate', 'nautilus_hmm.hmm', 'nautilus_hmm.control') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                          check=True)
    assert proc.stdout.strip() == "[]" and "cannot reach" in proc.stderr


def test_a_stream_line_beyond_the_limit_ends_the_tail_with_exit_1(monkeypatch, capsys) -> None:
    monkeypatch.setattr("nautilus_hmm.admin_client.MAX_EVENT_LINE_BYTES", 1000)
    stream = b'event: A\ndata: {"type": "A"}\n\nevent: B\ndata: ' + b"x" * 5000 + b"\n\n"
    with AdminStub(200, stream, SSE) as stub:
        code, out, err = run(["ctl", "events", "--url", stub.url, "--token", "t"], capsys)
    assert code == 1 and "a line longer than 1000 bytes" in err
    assert out.splitlines() == ["--:--:--.---  A"]


def test_an_answer_that_is_not_an_event_stream_is_named_exit_1(capsys) -> None:
    with AdminStub(200, b"<html>login page</html>", "text/html") as stub:
        code, out, err = run(["ctl", "events", "--url", stub.url, "--token", "t"], capsys)
    assert code == 1 and out == ""
    assert f"{stub.url}/events did not answer with an event stream (Content-Type 'text/html')" in err
