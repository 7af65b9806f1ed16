"""Strategies: the Strategy protocol and every kind (bars in, targets out)."""
