"""journal: the durable SQLite (WAL) record of intents, orders, fills, positions and the audit.

Modules: `schema` (versions and forward migrations), `store` (`Journal`: open/refuse,
writer thread with group commit, sync and async reads), `rows` (typed rows read back),
`recovery` (rebuild in-flight orders and the fill replay at startup), `errors`.
Import from the modules; this package imports nothing.
"""
