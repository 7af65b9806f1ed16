"""nautilus-hmm: a single-process asyncio trading daemon for regime-switching strategies."""

__version__ = "0.1.0"
