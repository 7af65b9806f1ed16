"""`main(argv)`: run the IBKR emulator as a process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse

from nautilus_hmm.venues.emulator_common import (
    listen,
    positive_float,
    run_main,
    serve_until_signal,
    whole_number,
)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `nautilus-hmm emulator ibkr`."""
    p = argparse.ArgumentParser(
        prog="nautilus-hmm emulator ibkr",
        description="An IB Gateway / TWS API socket server on loopback (the protocol subset ib_async uses): "
                    "contracts AAPL, MSFT, ES (3 expiries), EUR.USD, USD.JPY; a seeded market with session hours; "
                    "orders, executions, positions, account; fault injection on --control-port.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=whole_number(0, 65535), default=4002,
                   help="API port (default 4002, IB Gateway's paper port; 0 = any free port, printed at start)")
    p.add_argument("--seed", type=int, default=7, help="seed of the market")
    p.add_argument("--tick-interval", type=positive_float, default=1.0, help="seconds between market steps")
    p.add_argument("--market-time-scale", type=positive_float, default=1.0, metavar="X",
                   help="market time runs X times the wall clock (quotes, fill prices, real-time bars, ticks, "
                        "historical bars: a 5 s bar every 5/X s); server time, orders, executions and the "
                        "session calendar stay on the wall clock (default 1)")
    p.add_argument("--always-open", action="store_true",
                   help="every contract trades around the clock, every day, no holidays (contract details list "
                        "00:00-24:00 for each day), so sessions never depend on the wall clock's hour or weekday")
    p.add_argument("--no-subscription", nargs="*", default=[], metavar="SYMBOL",
                   help="symbols (AAPL, MSFT, ES, EUR.USD, USD.JPY) without a market data subscription: delayed data "
                        "only (10167), no real-time bars or tick-by-tick")
    p.add_argument("--daily-restart-at", default=None, metavar="HH:MM",
                   help="restart like IB Gateway every day at this New York time: every connection closed, "
                        "new ones refused for --restart-refuse-s seconds (orders and positions kept)")
    p.add_argument("--restart-refuse-s", type=positive_float, default=60.0,
                   help="seconds the daily restart refuses connections (default 60)")
    p.add_argument("--control-port", type=whole_number(0, 65535), default=None,
                   help="serve the fault-injection HTTP routes (POST /_emulator/faults, GET /_emulator/state) "
                        "on this port (0 = any free port)")
    return p


class _Running:
    def __init__(self, emu, runner) -> None:  # type: ignore[no-untyped-def]
        self.emu = emu
        self.runner = runner

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        await self.emu.close()


async def _serve(args: argparse.Namespace) -> None:
    from nautilus_hmm.venues.ibkr.emulator import start
    from nautilus_hmm.venues.ibkr.emulator.control import ControlServer
    from nautilus_hmm.venues.ibkr.emulator.market import default_contracts

    listed = {c.data_key for c in default_contracts()}
    bad = [s for s in args.no_subscription if s.upper() not in listed]
    if bad:
        raise ValueError(f"--no-subscription {bad[0]!r}: not a listed symbol ({', '.join(sorted(listed))})")
    emu = await start(args.host, args.port, seed=args.seed, tick_interval_s=args.tick_interval,
                      unsubscribed=tuple(s.upper() for s in args.no_subscription),
                      daily_restart_at=args.daily_restart_at, daily_restart_refuse_s=args.restart_refuse_s,
                      market_time_scale=args.market_time_scale, always_open=args.always_open)
    runner = None
    extra = ""
    if args.control_port is not None:
        try:
            runner, control_port = await listen(ControlServer(emu).app, args.host, args.control_port)
        except BaseException:
            await emu.close()
            raise
        extra = f" control http://{args.host}:{control_port}/_emulator/faults"
    print(f"ibkr emulator listening: api {args.host}:{emu.port} account DU1234567{extra}", flush=True)
    await serve_until_signal(_Running(emu, runner))


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and serve until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_main(args, _serve)
