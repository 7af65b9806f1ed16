"""`main(argv)`: run the Binance emulator as a process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from decimal import Decimal

from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.emulator_common import (
    balances,
    load_replay,
    run_main,
    serve_until_signal,
    symbol,
    whole_number,
)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `nautilus-hmm emulator binance`."""
    p = argparse.ArgumentParser(
        prog="nautilus-hmm emulator binance",
        description="A Binance-compatible exchange (REST, WebSocket API order entry, websocket streams) on loopback, "
                    "with fault injection at POST /_emulator/faults.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=whole_number(0, 65535), default=0, help="port (0 = any free port, printed at start)")
    p.add_argument("--api-key", required=True, help="the API key clients must send")
    p.add_argument("--api-secret", required=True, help="the HMAC secret clients sign with")
    p.add_argument("--market", choices=("spot", "usdm"), default="spot", help="spot (/api/v3) or USD-M (/fapi)")
    p.add_argument("--symbols", nargs="+", type=symbol, default=["BTCUSDT", "ETHUSDT"], help="listed symbols (…USDT)")
    p.add_argument("--replay", default="", help="klines or trades CSV replayed as the first symbol's market")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic market")
    p.add_argument("--tick-interval", type=float, default=1.0, help="seconds between market ticks")
    p.add_argument("--balance", action="append", default=[], metavar="ASSET=AMOUNT",
                   help="starting balance (repeatable; default USDT=100000 BTC=1 ETH=10)")
    p.add_argument("--weight-limit", type=whole_number(0), default=0, help="request weight per minute (0 = Binance's)")
    p.add_argument("--read-only-key", action="store_true",
                   help="the API key may only read (Binance 'Enable Reading'): orders, cancels and account "
                        "settings answer -2015, as for a monitor-mode daemon's key")
    p.add_argument("--unmetered", action="store_true",
                   help="requests weigh nothing (no 429 from weights): for tests that restart a client far more "
                        "often than Binance's weight budget allows")
    p.add_argument("--market-time-scale", type=float, default=1.0,
                   help="market event times run this many times faster than the wall clock (20: a 1 s kline "
                        "closes every 50 ms); server time, orders and fills stay on the wall clock")
    return p


def _balances(items: list[str]) -> dict[str, Decimal] | None:
    return balances(items, "ASSET")


async def _serve(args: argparse.Namespace) -> None:
    from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator

    replay = load_replay(args.replay)
    emu = BinanceEmulator(
        Market(args.market), api_key=args.api_key, api_secret=args.api_secret,
        symbols=args.symbols, seed=args.seed, replay=replay,
        tick_interval_s=args.tick_interval, balances=_balances(args.balance),
        weight_limit_1m=args.weight_limit or None, host=args.host, port=args.port,
        market_time_scale=args.market_time_scale, unmetered=args.unmetered, read_only_key=args.read_only_key,
    )
    await emu.start()
    print(f"binance emulator ({args.market}) listening: rest {emu.url} ws {emu.ws_url} ws_api {emu.ws_api_url}",
          flush=True)
    await serve_until_signal(emu)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and serve until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_main(args, _serve)
