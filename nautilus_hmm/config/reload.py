"""Reload: parse → validate → diff → apply, all-or-nothing.

* Invalid file: keep the running config, report every error (`result = invalid`).
* Any restart-only field changed: reject the whole reload, naming those fields
  (`result = restart_required`); nothing is applied, not even the live fields.
* Otherwise every applier receives the new config in the same loop turn (no await in
  between, so nobody observes a half-applied config). If an applier raises, the ones
  already applied get the old config back and the reload is rejected.

Each outcome is published on the bus (ConfigApplied / ConfigRejected) and logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from nautilus_hmm.config.loader import ConfigError, config_hash, diff, load
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.messages import ConfigApplied, ConfigRejected

log = structlog.get_logger("config")

Applier = Callable[[Config], None]


@dataclass(slots=True)
class ReloadResult:
    """Outcome of one reload attempt."""

    result: str  # applied | unchanged | invalid | restart_required | failed
    config_hash: str
    changed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the node now runs the file's config."""
        return self.result in ("applied", "unchanged")


class ConfigManager:
    """Owns the active config and applies reloads."""

    def __init__(self, path: str | Path, config: Config, bus: Bus, clock: Clock) -> None:
        self.path = Path(path)
        self.current = config
        self.hash = config_hash(config)
        self.loaded_at_ns = clock.time_ns()
        self._bus = bus
        self._clock = clock
        self._appliers: list[tuple[str, Applier]] = []

    def add_applier(self, name: str, fn: Applier) -> None:
        """Register a function that applies live fields of a new config."""
        self._appliers.append((name, fn))

    def reload(self, source: str) -> ReloadResult:
        """Re-read the file and apply it if valid and only live fields changed."""
        now = self._clock.time_ns()
        try:
            new = load(Config, self.path)
        except ConfigError as exc:
            for e in exc.errors:
                log.error("config_reload_invalid", source=source, path=str(self.path), error=e)
            self._bus.publish(ConfigRejected(ts_event_ns=now, ts_init_ns=now, errors=tuple(exc.errors),
                                             restart_required=(), source=source))
            return ReloadResult("invalid", self.hash, errors=list(exc.errors))
        changes = diff(self.current, new)
        if not changes:
            log.info("config_reload_unchanged", source=source, config_hash=self.hash)
            return ReloadResult("unchanged", self.hash)
        restart = [c.path for c in changes if not c.live]
        if restart:
            log.error("config_reload_restart_required", source=source, fields=restart,
                      hint="restart the service to change these; nothing was applied")
            self._bus.publish(ConfigRejected(ts_event_ns=now, ts_init_ns=now, errors=(),
                                             restart_required=tuple(restart), source=source))
            return ReloadResult("restart_required", self.hash, changed=[c.path for c in changes],
                                restart_required=restart)
        old = self.current
        applied: list[Applier] = []
        for name, fn in self._appliers:
            try:
                fn(new)
                applied.append(fn)
            except Exception as exc:
                log.error("config_apply_failed", applier=name, error=repr(exc), exc_info=exc)
                for undo in applied:
                    try:
                        undo(old)
                    except Exception as undo_exc:  # pragma: no cover - best effort
                        log.error("config_rollback_failed", error=repr(undo_exc))
                msg = f"applying the new config failed in {name}: {exc}; old config kept"
                self._bus.publish(ConfigRejected(ts_event_ns=now, ts_init_ns=now, errors=(msg,),
                                                 restart_required=(), source=source))
                return ReloadResult("failed", self.hash, errors=[msg])
        self.current = new
        self.hash = config_hash(new)
        self.loaded_at_ns = now
        changed = [c.path for c in changes]
        for c in changes:
            log.info("config_changed", path=c.path, old=str(c.old), new=str(c.new))
        log.info("config_reload_applied", source=source, config_hash=self.hash, changed=changed)
        self._bus.publish(ConfigApplied(ts_event_ns=now, ts_init_ns=now, config_hash=self.hash,
                                        changed=tuple(changed), source=source))
        return ReloadResult("applied", self.hash, changed=changed)
