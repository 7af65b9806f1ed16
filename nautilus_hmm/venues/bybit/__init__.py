"""Bybit v5: its config section only; the adapter is not built yet (enabling it is a config error)."""
