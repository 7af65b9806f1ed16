"""`main(argv)`: run the Bybit emulator as a process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from decimal import Decimal

from nautilus_hmm.venues.emulator_common import (
    balances,
    load_replay,
    positive_float,
    run_main,
    serve_until_signal,
    symbol,
    whole_number,
)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `nautilus-hmm emulator bybit`."""
    p = argparse.ArgumentParser(
        prog="nautilus-hmm emulator bybit",
        description="A Bybit-v5-compatible exchange (spot + linear: REST /v5, public/private/trade websockets) on "
                    "loopback, with fault injection at POST /_emulator/faults.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=whole_number(0, 65535), default=0, help="port (0 = any free port, printed at start)")
    p.add_argument("--api-key", required=True, help="the API key clients must send")
    p.add_argument("--api-secret", required=True, help="the HMAC secret clients sign with")
    p.add_argument("--symbols", nargs="+", type=symbol, default=["BTCUSDT", "ETHUSDT"],
                   help="listed symbols (…USDT), in both categories (spot and linear)")
    p.add_argument("--replay", default="", help="klines or trades CSV replayed as the first symbol's market")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic market")
    p.add_argument("--tick-interval", type=positive_float, default=1.0, help="seconds between market ticks")
    p.add_argument("--balance", action="append", default=[], metavar="COIN=AMOUNT",
                   help="starting balance of the unified account (repeatable; default USDT=100000 BTC=1 ETH=10)")
    p.add_argument("--market-time-scale", type=positive_float, default=1.0,
                   help="market event times run this many times faster than the wall clock (60: a 1 m kline "
                        "closes every second); server time, orders and fills stay on the wall clock")
    p.add_argument("--unmetered", action="store_true",
                   help="no per-endpoint rate limit (10006): for tests that restart a client very often")
    p.add_argument("--read-only-key", action="store_true",
                   help="the API key may only read (Bybit 'Read-Only'): orders, cancels, leverage and position "
                        "mode answer retCode 10005, as for a monitor-mode daemon's key")
    return p


def _balances(items: list[str]) -> dict[str, Decimal] | None:
    return balances(items, "COIN")


async def _serve(args: argparse.Namespace) -> None:
    from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

    replay = load_replay(args.replay)
    emu = BybitEmulator(api_key=args.api_key, api_secret=args.api_secret, symbols=args.symbols, seed=args.seed,
                        replay=replay, tick_interval_s=args.tick_interval, balances=_balances(args.balance),
                        host=args.host, port=args.port, unmetered=args.unmetered,
                        market_time_scale=args.market_time_scale, read_only_key=args.read_only_key)
    await emu.start()
    print(f"bybit emulator listening: rest {emu.url} ws_public {emu.ws_public_url}/{{spot,linear}} "
          f"ws_private {emu.ws_private_url} ws_trade {emu.ws_trade_url}", flush=True)
    await serve_until_signal(emu)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and serve until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_main(args, _serve)
