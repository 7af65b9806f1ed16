"""Market data plumbing.

* `replay`: loaders for recorded files (Binance klines, OHLCV CSV, Binance/Tardis trades)
  into columnar `BarArrays` / `TradeArrays`, and iterators of bus messages over them.
  `BarArrays` is the one column form of bars: replayed, fetched from a venue's past and
  trained on by the model (validation, fingerprint, optional quote columns).
* `bars`: the bar builders, `BarAggregator` (trades → time bars) and `BarResampler` /
  `resample_bars` (base bars → longer bars), and `PriceCache` (last prices and marks).
* `synthetic`: a seeded regime-switching trade/quote generator.

Everything here is pure (no asyncio); owners feed it and publish what comes out.
"""
