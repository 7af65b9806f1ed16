"""Reload: parse → validate → diff → hash → apply, all-or-nothing.

* Invalid file: keep the running config, report every error (`result = invalid`).
* Any restart-only field changed: reject the whole reload, naming those fields
  (`result = restart_required`); nothing is applied, not even the live fields. A
  restart check (`add_restart_check`) names what a live field's new value cannot do
  without a restart (adding an hmm strategy): the same rejection.
* Everything that can fail without touching a component (parse, validate, diff, the
  new hash) is computed before the first applier runs.
* Then the new config becomes `current` and every applier receives it, in the same
  loop turn (no await in between, so nobody observes a half-applied config); a
  component that reads `current` and one that was handed the config see the same one.
  If an applier raises, `current` is the old config again and every applier that ran
  (the failing one included, it may have half-applied) gets the old config back, in
  reverse order; the reload is rejected (`result = failed`).
* `reload()` never raises: an unexpected error is a `failed` result, logged with its
  traceback (it runs from a signal callback and from an HTTP handler).

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
RestartCheck = Callable[[Config, Config], list[str]]  # (old, new) -> what needs a restart, named


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
        self._restart_checks: list[RestartCheck] = []

    def add_applier(self, name: str, fn: Applier) -> None:
        """Register a function that applies live fields of a new config."""
        self._appliers.append((name, fn))

    def add_restart_check(self, fn: RestartCheck) -> None:
        """Register a check naming changes of live fields that still need a restart."""
        self._restart_checks.append(fn)

    def reload(self, source: str) -> ReloadResult:
        """Re-read the file and apply it if valid and only live fields changed; never raises."""
        now = self._clock.time_ns()
        try:
            return self._reload(source, now)
        except Exception as exc:  # a bug on this path must not kill a signal callback
            log.error("config_reload_failed", source=source, error=repr(exc), exc_info=exc)
            msg = f"reload failed: {exc!r}; old config kept"
            self._reject(now, source, "failed", errors=(msg,))
            return ReloadResult("failed", self.hash, errors=[msg])

    def _reject(self, now: int, source: str, result: str, errors: tuple[str, ...] = (),
                restart_required: tuple[str, ...] = ()) -> None:
        self._bus.publish(ConfigRejected(ts_event_ns=now, ts_init_ns=now, errors=errors,
                                         restart_required=restart_required, source=source, result=result))

    def _reload(self, source: str, now: int) -> ReloadResult:
        try:
            new = load(Config, self.path)
        except ConfigError as exc:
            for e in exc.errors:
                log.error("config_reload_invalid", source=source, path=str(self.path), error=e)
            self._reject(now, source, "invalid", errors=tuple(exc.errors))
            return ReloadResult("invalid", self.hash, errors=list(exc.errors))
        changes = diff(self.current, new)
        if not changes:
            log.info("config_reload_unchanged", source=source, config_hash=self.hash)
            return ReloadResult("unchanged", self.hash)
        restart = [c.path for c in changes if not c.live]
        for check in self._restart_checks:
            restart.extend(check(self.current, new))
        if restart:
            log.error("config_reload_restart_required", source=source, fields=restart,
                      hint="restart the service to change these; nothing was applied")
            self._reject(now, source, "restart_required", restart_required=tuple(restart))
            return ReloadResult("restart_required", self.hash, changed=[c.path for c in changes],
                                restart_required=restart)
        try:
            new_hash = config_hash(new)
        except Exception as exc:
            msg = f"cannot hash the new config: {exc}; nothing was applied"
            log.error("config_reload_failed", source=source, error=msg)
            self._reject(now, source, "failed", errors=(msg,))
            return ReloadResult("failed", self.hash, errors=[msg])
        old = self.current
        self.current = new
        ran: list[tuple[str, Applier]] = []
        for name, fn in self._appliers:
            ran.append((name, fn))
            try:
                fn(new)
            except Exception as exc:
                log.error("config_apply_failed", applier=name, error=repr(exc), exc_info=exc)
                self.current = old
                self._roll_back(ran, old)
                msg = f"applying the new config failed in {name}: {exc}; old config kept"
                self._reject(now, source, "failed", errors=(msg,))
                return ReloadResult("failed", self.hash, errors=[msg])
        self.hash = new_hash
        self.loaded_at_ns = now
        changed = [c.path for c in changes]
        for c in changes:
            log.info("config_changed", path=c.path, old=str(c.old), new=str(c.new))
        log.info("config_reload_applied", source=source, config_hash=self.hash, changed=changed)
        self._bus.publish(ConfigApplied(ts_event_ns=now, ts_init_ns=now, config_hash=self.hash,
                                        changed=tuple(changed), source=source))
        return ReloadResult("applied", self.hash, changed=changed)

    def _roll_back(self, ran: list[tuple[str, Applier]], old: Config) -> None:
        """Hand the old config back to every applier that ran, newest first."""
        for name, fn in reversed(ran):
            try:
                fn(old)
            except Exception as exc:  # the node keeps running; the log says which part may differ
                log.error("config_rollback_failed", applier=name, error=repr(exc), exc_info=exc)
