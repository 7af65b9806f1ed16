"""`nautilus-hmm ctl` against a real running node (sim venue, manual clock) on loopback: the
views hold what the API says (positions, orders, fills, status), --json is the API's JSON,
options go anywhere, trading acts change the node, and `events` tails the live stream.

ctl blocks (urllib), so it runs in a thread while the test's loop serves the node."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog.testing

from nautilus_hmm.cli import main
from nautilus_hmm.config import load_config
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.node import Node
from nautilus_hmm.obs.systemd import Notifier
from tests.nodeharness import TOKEN, client, running_node, write_config

BTC = InstrumentId("sim", "BTCUSDT")


async def until(pred: Callable[[], Any], what: str, timeout_s: float = 5.0) -> Any:
    """Wait (bounded) until `pred()` is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (value := pred()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.001)
    return value


async def settle(node: Node) -> None:
    for _ in range(3):
        await node.stack.engine.idle()
        await node.stack.journal.flush()


async def buy(node: Node, qty: str = "0.01") -> None:
    """A market buy filled at the sim venue (one order, one fill, one position)."""
    venue: Any = node.stack.venues["sim"]
    clock: Any = node.clock
    clock.advance(1)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
    assert node.stack.engine.plan("manual", BTC, Decimal(qty), "ctl test") is not None
    await settle(node)
    clock.advance(1)
    venue.step_trade(BTC, 60010.0, 5.0, clock.time_ns())
    await settle(node)


@pytest.fixture
async def node(tmp_path, monkeypatch) -> AsyncIterator[tuple[Node, str]]:
    for name in ("NAUTILUS_HMM_ADMIN_TOKEN_FILE", "NAUTILUS_HMM_ADMIN_URL", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with structlog.testing.capture_logs():  # the node's log lines stay out of ctl's stderr
        async with running_node(tmp_path, monkeypatch) as (n, url):
            await buy(n)
            yield n, url


async def ctl(*argv: str) -> int:
    return await asyncio.to_thread(main, ["ctl", *argv])


async def get(url: str) -> Any:
    async with client() as s, s.get(url) as r:
        return await r.json()


async def test_positions_table_holds_the_position_the_api_reports(node, capsys) -> None:
    _, url = node
    (pos,) = (await get(url + "/positions"))["positions"]
    assert await ctl("positions", "--url", url) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["INSTRUMENT", "QTY", "AVG", "PX", "MARK", "UNREALIZED", "REALIZED", "FEES", "EXPOSURE"]
    row = out[1].split()
    assert row[:4] == ["sim:BTCUSDT", pos["qty"], pos["avg_px"], pos["mark"]] == ["sim:BTCUSDT", "0.01000",
                                                                                  "60010.00", pos["mark"]]
    assert any(line.startswith("equity ") and "USDT" in line and "drawdown" in line for line in out)
    assert any(line.split()[:2] == ["BTC", "0.01000000"] for line in out)  # the balance at its mark
    assert "\x1b[" not in "\n".join(out)  # no colour codes in a pipe


async def test_json_is_the_apis_answer_before_or_after_the_action(node, capsys) -> None:
    _, url = node
    api = await get(url + "/positions")
    assert await ctl("--json", "positions", "--url", url) == 0
    before = orjson.loads(capsys.readouterr().out)
    assert await ctl("--url", url, "positions", "--json") == 0
    after = orjson.loads(capsys.readouterr().out)
    assert before == after == api


async def test_orders_and_fills_list_the_order_and_its_fill(node, capsys) -> None:
    _, url = node
    (order,) = (await get(url + "/orders"))["orders"]
    assert await ctl("orders", "--url", url) == 0
    out = capsys.readouterr().out
    assert order["client_order_id"] in out and "FILLED" in out and "BUY" in out
    assert await ctl("orders", "--open", "--url", url) == 0
    assert capsys.readouterr().out.strip() == "no orders"
    (fill,) = (await get(url + "/fills"))["fills"]
    assert await ctl("fills", "--url", url, "--since", "2000-01-01T00:00:00Z") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "INSTRUMENT"]
    assert fill["trade_id"] in lines[1].split() and fill["price"] in lines[1].split()
    assert lines[-1] == f"1 fill(s); next page: --since {fill['ts_ns'] + 1}"
    assert await ctl("fills", "--url", url, "--since", str(fill["ts_ns"] + 1)) == 0  # ns, as the API
    assert capsys.readouterr().out.strip() == "no fills"


async def test_status_view_shows_trading_state_components_and_the_position(node, capsys) -> None:
    _, url = node
    assert await ctl("status", "--url", url) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("nautilus-hmm ") and "trading ACTIVE" in first
    assert "COMPONENT" in out and "journal" in out and "sim:BTCUSDT" in out and "no open orders" in out


async def test_kill_with_a_reason_halts_and_resume_resumes(node, capsys) -> None:
    n, url = node
    assert await ctl("kill", "--reason", "ctl test", "--url", url, "--token", TOKEN) == 0
    assert capsys.readouterr().out.strip() == "trading HALTED"
    assert n.trading_state is TradingState.HALTED and n.trading_state_reason == "ctl test"
    assert await ctl("--token", TOKEN, "resume", "--url", url, "--json") == 0
    assert orjson.loads(capsys.readouterr().out) == {"trading_state": "ACTIVE"}
    assert n.trading_state is TradingState.ACTIVE


async def test_an_unknown_venue_on_resume_is_exit_1_naming_it(node, capsys) -> None:
    _, url = node
    assert await ctl("resume", "--venue", "ghost", "--url", url, "--token", TOKEN) == 1
    err = capsys.readouterr().err
    assert "venue = 'ghost': not a venue of this node (venues: sim)" in err


async def test_kill_with_a_wrong_token_is_exit_4_and_leaves_trading_on(node, capsys) -> None:
    n, url = node
    assert await ctl("kill", "--url", url, "--token", "wrong-token") == 4
    assert "the token from --token was refused" in capsys.readouterr().err
    assert n.trading_state is TradingState.ACTIVE


async def test_the_token_is_found_through_the_configs_state_dir(node, capsys, tmp_path, monkeypatch) -> None:
    n, url = node
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN")
    token_file = tmp_path / "state" / "admin-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no state/admin-token here: only --config leads to it
    assert await ctl("reduce", "--url", url, "--config", str(tmp_path / "config.toml")) == 0
    assert n.trading_state is TradingState.REDUCING


async def test_regimes_on_a_node_without_an_hmm_strategy_says_why(node, capsys) -> None:
    _, url = node
    assert await ctl("regimes", "--url", url) == 1
    assert 'has no route GET /regimes: the model commands need a daemon with [strategy] kind = "hmm"' \
        in capsys.readouterr().err


# ------------------------------------------------------------------ events


async def sse_connected(n: Node) -> None:
    await until(lambda: any(s.name.startswith(("sse:", "sse-public:")) for s in n.bus.queue_subscribers),
                "ctl events connected")


async def sse_freed(n: Node) -> None:
    """ctl left after --count: the next event the server writes finds the socket closed and the
    subscription goes (without it, the node's stop waits for the stream handler)."""
    states = [TradingState.REDUCING, TradingState.ACTIVE]

    def freed() -> bool:
        if not any(s.name.startswith(("sse:", "sse-public:")) for s in n.bus.queue_subscribers):
            return True
        states.reverse()  # one more event: a write after the peer closed fails on the second try
        n.set_trading_state(states[0], "after the tail", "test")
        return False

    await until(freed, "subscription freed")


async def test_events_json_lines_are_the_streams_payloads(node, capsys) -> None:
    n, url = node
    tail = asyncio.ensure_future(ctl("events", "--json", "--count", "1", "--types", "TradingStateChanged",
                                     "--url", url, "--token", TOKEN))
    await sse_connected(n)
    async with client() as s:
        r = await s.post(url + "/admin/kill", json={"reason": "tail me"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200
    assert await asyncio.wait_for(tail, 10) == 0
    await sse_freed(n)
    (line,) = capsys.readouterr().out.splitlines()
    event = orjson.loads(line)
    assert event["type"] == "TradingStateChanged" and event["new"] == "HALTED" and event["reason"] == "tail me"


async def test_events_human_lines_carry_time_type_and_fields(node, capsys) -> None:
    n, url = node
    tail = asyncio.ensure_future(ctl("--url", url, "--token", TOKEN, "events", "--count", "2",
                                     "--types", "TradingStateChanged"))
    await sse_connected(n)
    n.set_trading_state(TradingState.REDUCING, "first", "test")
    n.set_trading_state(TradingState.ACTIVE, "second", "test")
    assert await asyncio.wait_for(tail, 10) == 0
    await sse_freed(n)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    stamp = dt.datetime.fromtimestamp(n.clock.time_ns() / 1e9, dt.UTC).strftime("%H:%M:%S")
    assert lines[0].startswith(stamp) and "TradingStateChanged" in lines[0] and "reason=first" in lines[0]
    assert "new=ACTIVE" in lines[1] and "ts_event_ns" not in lines[1]


async def test_events_without_a_token_is_exit_4_listing_the_places_tried(node, capsys, monkeypatch) -> None:
    _, url = node
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN")
    assert await ctl("events", "--url", url) == 4
    err = capsys.readouterr().err
    assert "no admin token found; places tried, in order:" in err and "state/admin-token: not found" in err
    assert "`ctl events --public` tails the read-only stream" in err


async def test_events_public_needs_no_token_and_carries_the_trading_state(node, capsys, monkeypatch) -> None:
    n, url = node
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN")
    tail = asyncio.ensure_future(ctl("events", "--public", "--json", "--count", "1", "--url", url))
    await sse_connected(n)
    n.set_trading_state(TradingState.HALTED, "public view", "test")
    assert await asyncio.wait_for(tail, 10) == 0
    await sse_freed(n)
    event = orjson.loads(capsys.readouterr().out.splitlines()[0])
    assert event["type"] == "TradingStateChanged" and event["reason"] == "public view"


async def test_events_of_an_unknown_type_is_exit_1_naming_it_and_the_known(node, capsys) -> None:
    _, url = node
    assert await ctl("events", "--types", "Nope", "--url", url, "--token", TOKEN) == 1
    err = capsys.readouterr().err
    assert "unknown message type(s) Nope" in err and "TradingStateChanged" in err


async def test_events_ends_with_exit_3_when_the_daemon_stops_with_no_reconnect(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with structlog.testing.capture_logs():
        async with running_node(tmp_path, monkeypatch) as (n, url):
            tail = asyncio.ensure_future(ctl("events", "--no-reconnect", "--url", url, "--token", TOKEN))
            await sse_connected(n)
        # the node stopped: its server closed the stream
        assert await asyncio.wait_for(tail, 10) == 3
    assert "the daemon closed the event stream" in capsys.readouterr().err



async def test_events_reconnects_to_the_restarted_daemon_and_tails_on(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    restarted = threading.Event()
    delays: list[float] = []

    def wait(delay_s: float) -> None:  # ctl's backoff (admin_client.SLEEP): no real sleeping
        delays.append(delay_s)
        if len(delays) == 2:  # the first attempt found the port closed; the next one finds the new node
            assert restarted.wait(30), "the node was not restarted"

    monkeypatch.setattr("nautilus_hmm.admin_client.SLEEP", wait)
    with structlog.testing.capture_logs():
        async with running_node(tmp_path, monkeypatch) as (n, url):
            tail = asyncio.ensure_future(ctl("events", "--json", "--count", "1", "--types", "TradingStateChanged",
                                             "--url", url, "--token", TOKEN))
            await sse_connected(n)
        # the node stopped (its server closed the stream); the same config starts it again on its port
        await until(lambda: len(delays) == 2, "ctl waiting to reconnect after a refused attempt")
        path = write_config(tmp_path)
        path.write_text(path.read_text().replace("port = 0", f"port = {url.rsplit(':', 1)[1]}"))
        again = Node(load_config(str(path)), path, clock=ManualClock(), notifier=Notifier(""))
        await again.start()
        try:
            restarted.set()
            await sse_connected(again)
            again.set_trading_state(TradingState.HALTED, "after the restart", "test")
            assert await asyncio.wait_for(tail, 10) == 0
            await sse_freed(again)
        finally:
            await again.stop()
    cap = capsys.readouterr()
    (line,) = cap.out.splitlines()
    assert orjson.loads(line)["reason"] == "after the restart"
    assert delays == [0.5, 1.0]
    assert f"the daemon closed the event stream ({url}/events?types=TradingStateChanged); reconnecting" in cap.err
    assert f"reconnected to {url}/events?types=TradingStateChanged (attempt 2)" in cap.err


async def test_a_flatten_on_a_monitor_node_is_exit_5_saying_why(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[strategy]\nkind = "sma_cross"\n[node]\nstate_dir = "{tmp_path / "state"}"\nmode = "monitor"\n'
                   "[http]\nport = 0\n")
    with structlog.testing.capture_logs():
        n = Node(load_config(str(cfg)), cfg, clock=ManualClock(), notifier=Notifier(""))
        await n.start()
        try:
            url = f"http://127.0.0.1:{n.web.bound_port}"
            assert await ctl("status", "--url", url) == 0
            assert "MONITOR MODE: never sends an order" in capsys.readouterr().out.splitlines()[0]
            assert await ctl("kill", "--flatten", "--url", url) == 5
            err = capsys.readouterr().err
            assert err.startswith("error: ") and "monitor" in err
        finally:
            await n.stop()


@contextlib.asynccontextmanager
async def node_writing_its_token(tmp_path: Path, state_env: Path | None = None) -> AsyncIterator[tuple[Node, Path]]:
    """A node with no token configured: it writes <state dir>/admin-token itself at start."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[strategy]\nkind = "sma_cross"\n[node]\nstate_dir = "{tmp_path / "cfg-state"}"\n'
                   "[http]\nport = 0\n")
    n = Node(load_config(str(cfg)), cfg, clock=ManualClock(), notifier=Notifier(""))
    await n.start()
    try:
        written = (state_env or tmp_path / "cfg-state") / "admin-token"
        assert written.exists() and n.state_dir == written.parent
        yield n, cfg
    finally:
        await n.stop()


@pytest.fixture
def no_token_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("NAUTILUS_HMM_ADMIN_TOKEN", "NAUTILUS_HMM_ADMIN_TOKEN_FILE", "NAUTILUS_HMM_ADMIN_URL",
                 "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no state/admin-token in ctl's working directory
    return elsewhere


async def test_ctl_finds_the_token_the_node_wrote_through_its_config(tmp_path, no_token_env, capsys) -> None:
    with structlog.testing.capture_logs():
        async with node_writing_its_token(tmp_path) as (n, cfg):
            # the config names port 0: the URL is passed, the token comes from the config's state_dir
            url = f"http://127.0.0.1:{n.web.bound_port}"
            assert await ctl("kill", "--reason", "found it", "--url", url, "--config", str(cfg)) == 0
            assert n.trading_state is TradingState.HALTED and n.trading_state_reason == "found it"
            assert await ctl("resume", "--url", url) == 4  # without --config: not found, and it says where it looked
            err = capsys.readouterr().err
            assert f"{no_token_env / 'state' / 'admin-token'}: not found" in err


async def test_ctl_finds_the_token_the_node_wrote_under_state_directory(tmp_path, no_token_env, monkeypatch) -> None:
    state_env = tmp_path / "systemd-state"
    state_env.mkdir()
    monkeypatch.setenv("STATE_DIRECTORY", str(state_env))  # as systemd sets it for the unit and its ExecReload
    with structlog.testing.capture_logs():
        async with node_writing_its_token(tmp_path, state_env) as (n, _):
            assert await ctl("reduce", "--url", f"http://127.0.0.1:{n.web.bound_port}") == 0
            assert n.trading_state is TradingState.REDUCING
