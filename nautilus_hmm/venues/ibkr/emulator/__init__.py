"""An IB Gateway / TWS API server on loopback (the socket protocol subset ib_async 2.1.0 uses).

In-process (tests, benchmarks)::

    from nautilus_hmm.core.clock import ManualClock
    from nautilus_hmm.venues.ibkr import emulator

    emu = await emulator.start("127.0.0.1", 0, seed=7, clock=ManualClock(...))
    ib = IB(); await ib.connectAsync("127.0.0.1", emu.port, clientId=1)
    ...
    emu.step()                       # one market step now (the background step sleeps on `clock`)
    emu.drop_next_orders(1)          # faults: see control.py and docs/IBKR.md
    await emu.close()

`start(host, port, seed, clock, **options)` returns the started `IbkrEmulator` (`.port` is the
bound port: 0 takes a free one). Options: `contracts`, `tick_interval_s` (market step, clock
seconds), `server_version_max` (cap the negotiated version), `unsubscribed` (symbols with
delayed data only), `start_cash_usd`, `daily_restart_at`, `market_time_scale` (market time
runs that many times the clock: a 5 s bar every 5/scale s; orders, executions and the session
calendar stay on the clock), `always_open` (every contract in session around the clock, every
day). State for assertions: `emu.engine` (orders, positions, executions, cash), `emu.state()`
(JSON), `emu.sessions` (connections).

Command line: `nautilus-hmm emulator ibkr --port P [--seed N] [--market-time-scale X]
[--always-open] [--control-port C]` (cli.py); the control port serves `POST /_emulator/faults`
and `GET /_emulator/state`.

* `protocol` — framing, field codec, request parsers (pure).
* `market`   — contracts, session hours, the seeded market (pure).
* `engine`   — orders, matching, executions, commissions, positions, cash (pure).
* `control`  — fault state and the HTTP control routes.
* `server`   — `IbkrEmulator`: the socket server, sessions, message encoding, market steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nautilus_hmm.core.clock import Clock
    from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator

__all__ = ["IbkrEmulator", "main", "start"]


async def start(host: str = "127.0.0.1", port: int = 0, seed: int = 7, clock: Clock | None = None,
                **options: Any) -> IbkrEmulator:
    """Build and start an emulator listening on host:port (0: a free port, read `.port`)."""
    from nautilus_hmm.core.clock import LiveClock
    from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator

    emu = IbkrEmulator(host=host, port=port, seed=seed, clock=clock or LiveClock(), **options)
    await emu.start()
    return emu


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted (see `cli.main`)."""
    from nautilus_hmm.venues.ibkr.emulator.cli import main as _main

    return _main(argv)


def __getattr__(name: str) -> Any:
    if name == "IbkrEmulator":
        from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator

        return IbkrEmulator
    raise AttributeError(name)
