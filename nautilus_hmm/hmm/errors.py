"""Errors of the regime model: each names the field (or array and index) and the problem."""

from __future__ import annotations

from nautilus_hmm.core.errors import NautilusError


class HmmError(NautilusError):
    """Base of the regime-model errors."""


class FeatureError(HmmError, ValueError):
    """A feature spec or an online feature input is invalid."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class ModelError(HmmError, ValueError):
    """A model artifact (or parameters) failed validation: names the field and the problem."""

    def __init__(self, field: str, problem: str, source: str = "") -> None:
        self.field = field
        self.problem = problem
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(f"{head}{field}: {problem}")


class TrainingError(HmmError, ValueError):
    """Training cannot proceed (too little data, bad rows, every restart failed)."""
