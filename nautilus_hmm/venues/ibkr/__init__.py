"""Interactive Brokers (`ibkr`): stocks, futures and FX through IB Gateway's TWS socket API.

The wire protocol is ib_async's (the `ibkr` extra); nothing outside this package imports
it. Pure layer (no I/O): `config`, `contracts` (symbols → contract specs, details →
instruments, the contract cache), `errors` (IB error codes → what to do), `ids` (order
ids above every id used, made durable before the send), `pacing` (50 msg/s bucket, IB's
historical pacing), `parse` (ib_async objects → neutral types), `bars` (5-s bars and
ticks → the strategy's bars). I/O: `adapter` (`IbkrVenue`, the Venue protocol).
`emulator` is the loopback TWS-protocol venue for tests and rehearsals. `factory`
registers `[venues.ibkr]` (docs/IBKR.md).
"""
