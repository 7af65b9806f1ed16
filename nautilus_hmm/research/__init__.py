"""Offline research at scale (issue 13): verified history downloads, sweeps, execution simulation, reports.

Layered between `cli` and `evaluate`: it may use everything below it (venues' parsers and
REST clients, marketdata loaders, the HMM, the backtest); the daemon (`node`) never imports it.

* `download` (+ `data_cli`, `binance_mirror`): Binance public data dumps checked against
  their `.CHECKSUM`, the REST tail, Bybit REST klines; `quality`: the per-file report.
"""
