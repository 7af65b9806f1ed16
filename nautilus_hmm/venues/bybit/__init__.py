"""Bybit v5 spot (`bybit_spot`) and USDT perpetuals (`bybit_linear`, one-way mode).

Pure layer (no I/O): `auth` (X-BAPI signing, WebSocket auth), `errors` (retCode / HTTP
status → `core.errors` types), `parse` (REST results and WebSocket frames → neutral
types), `book` (local order book with u/seq checks).
I/O: `rest` (signed REST, time offset, X-Bapi-Limit pacing, bans and halts), `wsapi`
(trade WebSocket order entry), `streams` (public and private streams), `adapter`
(`BybitVenue`, the Venue protocol), `emulator` (the loopback venue for tests and
rehearsals). `config` and `factory` register `[venues.bybit_spot]` and
`[venues.bybit_linear]` (docs/BYBIT.md).

Raw Bybit dicts never leave this package.
"""
