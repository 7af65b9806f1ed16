"""journal: the durable SQLite (WAL) record of intents, orders, fills, positions and the audit.

Modules: `schema` (versions and forward migrations), `store` (`Journal`: open/refuse,
sequences, lifecycle), `writer` (write API, writer thread with group commit), `reads`
(sync and async reads), `files` (lock, checks, creation, migration with a backup),
`chain` (chained row checksums, verified at every open), `hwm` (the sequence high-water
mark outside SQLite), `rows` (typed rows read back), `recovery` (rebuild in-flight orders
and the fill replay at startup), `errors`. Import from the modules; this package imports
nothing.
"""
