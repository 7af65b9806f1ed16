"""Market data plumbing.

* `replay`: loaders for recorded files (Binance klines, OHLCV CSV, Binance/Tardis trades)
  into columnar `BarArrays` / `TradeArrays`, and iterators of bus messages over them.
* `bars`: `BarAggregator` (trades → time bars) and `PriceCache` (last prices and marks).
* `synthetic`: a seeded regime-switching trade/quote generator.

Everything here is pure (no asyncio); owners feed it and publish what comes out.
"""
