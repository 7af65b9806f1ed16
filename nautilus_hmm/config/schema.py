"""The root config: one frozen dataclass per TOML table.

Sections owned by a subsystem are declared in that subsystem's package (`risk.config`,
`venues.config` ...) and composed here. Each field is tagged live-reloadable or
restart-only (see core.fields.setting).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from nautilus_hmm.control.config import ControlConfig
from nautilus_hmm.core.fields import non_empty, section, setting
from nautilus_hmm.execution.config import ExecutionConfig
from nautilus_hmm.execution.mode import MODES, TRADE
from nautilus_hmm.hmm.config import HmmConfig
from nautilus_hmm.journal.config import JournalConfig
from nautilus_hmm.notify.config import NotifyConfig
from nautilus_hmm.risk.config import RiskConfig
from nautilus_hmm.strategies.config import StrategyConfig, StrategyInstanceConfig
from nautilus_hmm.venues.config import (
    VenuesConfig,
    check_venue_bar_interval,
    check_venue_symbol,
    enabled_venues,
)


def _ip_check(value: str) -> str | None:
    if value == "localhost":
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be an IP address such as 127.0.0.1 or ::1"
    return None


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """[node] — process-wide settings."""

    name: str = setting("nautilus-hmm", live=False, doc="node name (logs, metrics, client order id prefix)")
    state_dir: str = setting(
        "state", live=False, check=non_empty,
        doc="journal, models, paper account; relative to the working directory; "
        "under systemd $STATE_DIRECTORY wins",
    )
    graceful_stop_timeout_s: float = setting(20.0, live=True, ge=0.1, le=600, doc="SIGTERM: stop within this")
    heartbeat_interval_s: float = setting(60.0, live=True, ge=1, le=86_400, doc="heartbeat log line period")
    loop_lag_interval_s: float = setting(0.5, live=False, ge=0.01, le=10, doc="loop-lag probe period (also pings the systemd watchdog)")
    order_id_prefix: str = setting(
        "nh", live=False,
        check=lambda v: None if (1 <= len(v) <= 8 and v.replace("-", "").isalnum() and v.isascii())
        else "must be 1-8 ASCII letters, digits or '-'",
        doc="prefix of client order ids",
    )
    mode: str = setting(
        TRADE, live=False, choices=MODES,
        doc="trade = send orders; monitor = connect, stream, reconcile and serve metrics/API/dashboard, never "
            "send or cancel an order (read-only API keys suffice; admin flatten/cancel answer 409)",
    )


@dataclass(frozen=True, slots=True)
class LogConfig:
    """[log]"""

    level: str = setting("info", live=True, choices=("debug", "info", "warning", "error"), doc="minimum level")
    format: str = setting(
        "auto", live=False, choices=("auto", "json", "console"),
        doc="auto = json under systemd (JOURNAL_STREAM set), console otherwise",
    )


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """[http] — admin, metrics and event-stream server."""

    host: str = setting(
        "127.0.0.1", live=False, check=lambda v: _ip_check(v),
        doc="listen address; non-loopback logs a SECURITY warning",
    )
    port: int = setting(8080, live=False, ge=0, le=65535, doc="listen port (0 = any free port)")
    sse_queue_size: int = setting(1000, live=True, ge=1, le=1_000_000, doc="events buffered per SSE client before it is disconnected")
    sse_heartbeat_s: float = setting(15.0, live=True, ge=0.1, le=3600, doc="SSE comment heartbeat period")
    allowed_hosts: tuple[str, ...] = setting(
        (), live=True,
        doc="extra names the server answers in the Host header (besides the bind address, loopback "
            "names and this machine's hostname); any other Host is refused 421 (DNS rebinding)",
    )


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """[supervisor] — restart budgets of supervised components."""

    max_restarts: int = setting(5, live=False, ge=0, le=10_000, doc="restarts allowed within window_s before giving up")
    window_s: float = setting(300.0, live=False, ge=1, le=86_400, doc="restart budget window")
    backoff_initial_s: float = setting(0.5, live=False, ge=0.001, le=3600, doc="first restart backoff")
    backoff_max_s: float = setting(30.0, live=False, ge=0.001, le=3600, doc="backoff cap")


# Floating-point slack of the share-feasibility rule (shares are read from TOML decimals).
SHARE_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Config:
    """The whole node configuration."""

    node: NodeConfig = section(NodeConfig, doc="process")
    log: LogConfig = section(LogConfig, doc="logging")
    http: HttpConfig = section(HttpConfig, doc="admin HTTP")
    supervisor: SupervisorConfig = section(SupervisorConfig, doc="supervision")
    venues: VenuesConfig = section(VenuesConfig, doc="venues")
    strategy: StrategyConfig = section(StrategyConfig, doc="the one-strategy shorthand, used when [[strategies]] is absent")
    strategies: tuple[StrategyInstanceConfig, ...] = setting(
        (), live=True,
        doc="[[strategies]]: the configured strategy instances; a reload may add, remove, enable, disable "
            "and re-parameterize them (all-or-nothing); empty = the [strategy] table",
    )
    control: ControlConfig = section(ControlConfig, doc="control plane")
    execution: ExecutionConfig = section(ExecutionConfig, doc="execution")
    risk: RiskConfig = section(RiskConfig, doc="risk rails")
    journal: JournalConfig = section(JournalConfig, doc="journal")
    hmm: HmmConfig = section(HmmConfig, doc="regime model")
    notify: NotifyConfig = section(NotifyConfig, doc="notifications: channels (URLs from the environment), routes, coalescing")

    def strategy_instances(self) -> tuple[StrategyInstanceConfig, ...]:
        """The effective strategies: [[strategies]], or the [strategy] table as one instance (id = its kind)."""
        if self.strategies:
            return self.strategies
        return (self.strategy.as_instance(self.hmm.policy.canary_capital_fraction),)

    def traded_instruments(self) -> tuple[str, ...]:
        """Every instrument of every effective strategy (enabled or not), first mention first."""
        return tuple(dict.fromkeys(i for s in self.strategy_instances() for i in s.instruments))

    def venue_bar_interval_s(self, venue: str) -> int:
        """The bar length the strategies on `venue` consume (validate: one per venue); a venue no
        strategy trades gets the first strategy's."""
        instances = self.strategy_instances()
        for s in instances:
            if any(i.partition(":")[0] == venue for i in s.instruments):
                return s.bar_interval_s
        return instances[0].bar_interval_s

    def validate(self) -> list[tuple[str, object, str]]:
        """Cross-section rules: unique strategy ids; every instrument of every strategy (enabled
        or not) on an enabled venue; feasible shares; bar intervals each venue can build."""
        out: list[tuple[str, object, str]] = []
        enabled = set(enabled_venues(self.venues))
        if self.strategies and self.strategy != StrategyConfig():
            out.append(("strategy", {}, "set either [[strategies]] or the [strategy] shorthand, not both"))
        named = [(f"strategies[{i}]", s) for i, s in enumerate(self.strategies)] or [("strategy", self.strategy)]
        bad_interval: set[str] = set()  # said once: the venue's own rule first
        seen: dict[str, int] = {}
        for i, s in enumerate(self.strategies):
            if s.id in seen:
                out.append((f"strategies[{i}].id", s.id, f"duplicate: strategies[{seen[s.id]}] has the same id"))
            seen.setdefault(s.id, i)
        for where, s in named:
            for j, iid in enumerate(s.instruments):
                venue, sep, symbol = iid.partition(":")
                if not sep or not symbol:
                    out.append((f"{where}.instruments[{j}]", iid, "expected 'venue:SYMBOL'"))
                elif venue not in enabled:
                    out.append((f"{where}.instruments[{j}]", iid, f"venue {venue!r} is not enabled"))
                elif problem := check_venue_symbol(self.venues, venue, symbol):
                    out.append((f"{where}.instruments[{j}]", iid, problem))
            traded = {iid.partition(":")[0] for iid in s.instruments}
            for venue in sorted(enabled & traded):
                if problem := check_venue_bar_interval(self.venues, venue, s.bar_interval_s):
                    out.append((f"{where}.bar_interval_s", s.bar_interval_s, problem))
                    bad_interval.add(where)
        # A venue builds bars of one length (the Binance adapter subscribes one kline stream).
        first_on: dict[str, tuple[str, int]] = {}
        for where, s in named:
            if where in bad_interval:
                continue
            for venue in dict.fromkeys(i.partition(":")[0] for i in s.instruments):
                other = first_on.setdefault(venue, (where, s.bar_interval_s))
                if other[1] != s.bar_interval_s:
                    out.append((f"{where}.bar_interval_s", s.bar_interval_s,
                                f"{other[0]} trades venue {venue!r} with bar_interval_s = {other[1]}: "
                                "the strategies of one venue share one bar interval"))
        live = [s for s in self.strategies if s.enabled]
        if live:
            floor = sum(s.min_share for s in live)
            ceiling = sum(s.max_share for s in live)
            if floor > 1 + SHARE_EPS:
                out.append(("strategies[*].min_share", round(floor, 9),
                            "the enabled strategies' min_share sum to more than 1 (the account): lower them"))
            if ceiling < 1 - SHARE_EPS:
                out.append(("strategies[*].max_share", round(ceiling, 9),
                            "the enabled strategies' max_share sum to less than 1 (the account cannot be "
                            "allocated): raise them"))
        return out
