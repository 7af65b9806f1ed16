"""Pieces shared by the loopback venue emulators (Binance, Bybit, IBKR): command-line argument
types, the `--balance` / `--replay` parsing, the serve-until-signal start-up/shutdown, the
HTTP listener / background-task handling of the servers, and the tick-to-order loop of
their `bench_ping_pong`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import orjson
from aiohttp import web

from nautilus_hmm.core.errors import DataError
from nautilus_hmm.marketdata.replay import load_market_file

QUOTE = "USDT"  # every symbol the emulators list is quoted in it


def json_response(body: Any, status: int = 200) -> web.Response:
    """`body` as an application/json response (orjson)."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def listen(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port; returns the runner and the bound port (port 0: the free port taken)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:  # e.g. the port is taken: release the runner, the caller holds none
        await runner.cleanup()
        raise
    server = site._server
    if server is not None and getattr(server, "sockets", None):
        port = server.sockets[0].getsockname()[1]
    return runner, port


async def cancel_tasks(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the tasks, wait for each to finish (whatever it raises), and empty the list."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(BaseException):
            await t
    tasks.clear()


class CounterFaults:
    """Base of the emulators' `Faults`: the one-shot counter faults (int fields)."""

    __slots__ = ()

    def take(self, name: str) -> bool:
        """Use one unit of counter fault `name`; True if it was armed (it fires now)."""
        v = getattr(self, name)
        if v > 0:
            setattr(self, name, v - 1)
            return True
        return False


OrderWaiter = asyncio.Future[tuple[str, int]]  # set by the request path: (client order id, perf_counter_ns)


async def ping_pong_samples(n: int, prepare: Callable[[int], Callable[[], Awaitable[object]]],
                            arm: Callable[[OrderWaiter | None], None], timeout_s: float,
                            gap_s: float) -> dict[str, Any]:
    """The tick-to-order loop of the emulators' `bench_ping_pong`, `n` times: `prepare(i)`
    builds the i-th trade and returns what sends it (ValueError when nobody subscribes);
    a new waiter is armed (`arm`), the trade sent, and the next order awaited for
    `timeout_s`, then disarmed (`arm(None)`). Samples are (perf_counter_ns just before the
    send, the waiter's arrival ns, its order id); an order that does not come counts in
    `missed`. `gap_s` pauses after each order so the client can settle."""
    loop = asyncio.get_running_loop()
    samples: list[tuple[int, int, str]] = []
    missed = 0
    for i in range(n):
        send = prepare(i)
        waiter: OrderWaiter = loop.create_future()
        arm(waiter)
        send_ns = time.perf_counter_ns()
        await send()
        try:
            ref, arrival_ns = await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            missed += 1
            continue
        finally:
            arm(None)
        samples.append((send_ns, arrival_ns, ref))
        if gap_s > 0:
            await asyncio.sleep(gap_s)
    return {"samples": samples, "missed": missed}


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number in [low, high]; the message names the value and the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            bound = f"{low}-{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number {bound}")
        return value

    return parse


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0; the message names the value."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):  # NaN is not > 0
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number > 0")
    return value


def symbol(text: str) -> str:
    """argparse type: a symbol the emulator can list (letters and digits ending with USDT, in
    any case); anything else is a usage error naming it, before the exchange is built."""
    sym = text.upper()
    if not (sym.isascii() and sym.isalnum() and sym.endswith(QUOTE) and sym != QUOTE):
        raise argparse.ArgumentTypeError(f"{text!r} is not a symbol the emulator lists: expected letters "
                                         f"and digits ending with {QUOTE}, e.g. BTC{QUOTE}")
    return sym


def balances(items: list[str], unit: str = "ASSET") -> dict[str, Decimal] | None:
    """`--balance UNIT=AMOUNT` items as {UNIT: amount} (None when there are none); a bad item exits
    with a message naming it."""
    if not items:
        return None
    out: dict[str, Decimal] = {}
    for item in items:
        asset, sep, amount = item.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal(-1)
        if not sep or not asset or not value.is_finite() or value < 0:
            raise SystemExit(f"--balance {item!r}: expected {unit}=AMOUNT with AMOUNT >= 0")
        out[asset.upper()] = value
    return out


def load_replay(path: str) -> Any:
    """The `--replay` market file (None without one); a bad file exits naming it."""
    if not path:
        return None
    try:
        return load_market_file(path)
    except DataError as exc:
        raise SystemExit(f"--replay: {exc}") from None


class _Stoppable(Protocol):
    async def stop(self) -> None: ...


async def serve_until_signal(emu: _Stoppable) -> None:
    """Wait for SIGINT/SIGTERM, then stop the (started) emulator."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emu.stop()


def run_main(args: argparse.Namespace, serve: Callable[[argparse.Namespace], Coroutine[Any, Any, None]]) -> int:
    """Run `serve(args)` until it returns; the exit status (2 bad value, 1 cannot listen, 0 otherwise)."""
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the listener: a port in use, an address that is not this host's
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
