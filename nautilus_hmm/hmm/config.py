"""[hmm] — regime model, policy and guardrails (used when strategy.kind = "hmm")."""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.config.fields import setting


@dataclass(frozen=True, slots=True)
class HmmConfig:
    """Placeholder until the HMM policy lands; extended there."""

    registry_dir: str = setting("models", live=False, doc="model registry; relative paths are under node.state_dir")
