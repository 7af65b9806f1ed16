"""Composition root: builds every component from the config, owns the supervisor,
signals and systemd notifications.

Start order: HTTP server first (so /health and /ready answer while the rest starts),
then the loop monitor and heartbeat, then the trading components. Stop is the reverse.
Trading stays HALTED until start-up reconciliation passes.
"""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import signal
import socket
import time
from pathlib import Path
from typing import Any

import structlog
from prometheus_client.metrics_core import Metric

from nautilus_hmm import __version__
from nautilus_hmm.bootstrap import TradingStack, TradingStarter, build_stack, restart_needed
from nautilus_hmm.config import Config
from nautilus_hmm.config.loader import to_dict
from nautilus_hmm.config.reload import ConfigManager, ReloadResult
from nautilus_hmm.control.allocation import ShareBounds
from nautilus_hmm.control.allocator import Allocator
from nautilus_hmm.control.bandit import BanditFeedback
from nautilus_hmm.control.governance import Governance
from nautilus_hmm.control.plane import ControlPlane, RouterGovernanceInputs
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock, LiveClock
from nautilus_hmm.core.lifecycle import GiveUp, RestartPolicy, Supervisor
from nautilus_hmm.core.secrets import admin_token
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.execution.mode import MODES, MONITOR, OrderEntryDisabled, OrderGate
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.marketdata.history import HistoryVenue
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.messages import (
    AdminAction,
    AllocationChanged,
    BreakerStateChanged,
    ConfigApplied,
    ConfigRejected,
    ExecutionCorrected,
    GovernanceDecision,
    JournalGapDetected,
    MarketDataQualityChanged,
    Message,
    ModelChanged,
    PolicyDecision,
    ReconciliationCompleted,
    RiskDenied,
    RouterDenied,
    StrategyStateChanged,
    TradingStateChanged,
    VenueTradingStateChanged,
)
from nautilus_hmm.notify.events import summary_from_pnl_view
from nautilus_hmm.notify.notifier import Notifier as NotifyService
from nautilus_hmm.obs import logging as obs_logging
from nautilus_hmm.obs.metrics import NodeMetrics, counter_family, gauge_family
from nautilus_hmm.obs.monitor import Heartbeat, LoopLagMonitor
from nautilus_hmm.obs.systemd import Notifier
from nautilus_hmm.obs.trade_log import TradeLog
from nautilus_hmm.obs.trading_metrics import TradingMetrics
from nautilus_hmm.start_failure import StartError, bind_failure, describe
from nautilus_hmm.strategies.hmm import HmmStrategy
from nautilus_hmm.strategies.hmm_service import ModelService, build_model_service
from nautilus_hmm.venues.factory import build_venues
from nautilus_hmm.web.control import control_routes
from nautilus_hmm.web.models import model_routes
from nautilus_hmm.web.routes import Param
from nautilus_hmm.web.server import AdminAct, WebContext, WebServer, bind_listener
from nautilus_hmm.web.trading import trading_routes

log = structlog.get_logger("node")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_CONFIG = 78  # EX_CONFIG: RestartPreventExitStatus=78 stops a restart loop


def all_message_types() -> dict[str, type[Message]]:
    """Every concrete bus message class by name (for the SSE `types` filter)."""
    out: dict[str, type[Message]] = {}
    stack: list[type[Message]] = [Message]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            out[sub.__name__] = sub
            stack.append(sub)
    return out


def resolve_state_dir(cfg: Config) -> Path:
    """$STATE_DIRECTORY (systemd) wins over [node] state_dir."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    return Path(cfg.node.state_dir)


class Node:
    """One daemon instance."""

    def __init__(self, config: Config, config_path: str | Path, clock: Clock | None = None,
                 notifier: Notifier | None = None, http_socket: socket.socket | None = None) -> None:
        self.clock = clock or LiveClock()
        self.started_monotonic = time.monotonic()
        self.bus = Bus()
        self.notifier = notifier or Notifier()
        self.metrics = NodeMetrics(self.bus, self.started_monotonic)
        self.config = ConfigManager(config_path, config, self.bus, self.clock)
        # One fact in one place: the gauge reads the manager's timestamp (start, applied reloads).
        self.metrics.config_loaded.set_function(lambda: self.config.loaded_at_ns / 1e9)
        self.state_dir = resolve_state_dir(config)
        self.trading_state = TradingState.HALTED
        self.exit_code = EXIT_OK
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._signals = 0
        self._token: str | None = None
        self.supervisor = Supervisor(self.clock, self.bus, self._on_give_up)
        cfg = config
        self._policy = RestartPolicy(
            max_restarts=cfg.supervisor.max_restarts, window_s=cfg.supervisor.window_s,
            backoff_initial_s=cfg.supervisor.backoff_initial_s, backoff_max_s=cfg.supervisor.backoff_max_s,
        )
        self.loop_monitor = LoopLagMonitor(
            self.clock, cfg.node.loop_lag_interval_s, self.notifier, self.metrics.loop_lag.observe
        )
        self.heartbeat = Heartbeat(
            self.clock, lambda: self.config.current.node.heartbeat_interval_s, self._heartbeat_fields
        )
        self.stack = self._build_trading(cfg)
        try:
            self._assemble(cfg, http_socket)
        except BaseException:
            self._close_journal_after_failed_build()
            raise

    def _assemble(self, cfg: Config, http_socket: socket.socket | None) -> None:
        """Model service, web server, supervised children, appliers and subscriptions."""
        # One ModelService per HMM strategy; `models` is the first (the model routes and the
        # one-strategy callers use it).
        self.model_services: dict[str, ModelService] = self._build_model_services(cfg)
        self.models: ModelService | None = next(iter(self.model_services.values()), None)
        self.plane = self._build_control_plane(cfg)
        self._last_bounds = self._share_bounds()
        self.web = WebServer(self._web_context(), cfg.http.host, cfg.http.port, sock=http_socket)
        self.supervisor.add(self.web, self._policy_with(GiveUp.SHUTDOWN))
        self.supervisor.add(self.loop_monitor, self._policy_with(GiveUp.SHUTDOWN))
        self.supervisor.add(self.heartbeat, self._policy_with(GiveUp.IGNORE))
        # Notifications: stopped after the trading components (reverse order), so their last events go out.
        self.notify = NotifyService(
            cfg.notify, self.bus, self.clock, node_name=cfg.node.name, version=__version__,
            summary=lambda: summary_from_pnl_view(self.stack.engine.pnl_view(), self.stack.engine.counts["fills"]),
        )
        self.supervisor.add(self.notify, self._policy_with(GiveUp.IGNORE))
        self.metrics.add_collector(self.notify.collect_metrics)
        st = self.stack
        self.supervisor.add(st.journal, self._policy_with(GiveUp.SHUTDOWN))
        for venue in st.venues.values():
            self.supervisor.add(venue, self._policy_with(GiveUp.HALT_VENUE))
        self.supervisor.add(st.engine, self._policy_with(GiveUp.SHUTDOWN))
        for service in self.model_services.values():  # models load before the strategies see bars
            self.supervisor.add(service, self._policy_with(GiveUp.HALT_TRADING))
        # Shares restored (or static) before the strategies state their first targets.
        assert self.plane.allocator is not None and self.plane.governance is not None
        self.supervisor.add(self.plane.allocator, self._policy_with(GiveUp.HALT_TRADING))
        self.supervisor.add(self.trading, self._policy_with(GiveUp.HALT_TRADING))
        self.supervisor.add(self.plane.governance, self._policy_with(GiveUp.HALT_TRADING))
        assert st.reconciler is not None
        self.supervisor.add(st.reconciler, self._policy_with(GiveUp.HALT_TRADING))
        self.config.add_applier("log", lambda c: obs_logging.set_level(c.log.level))
        self.config.add_applier("trading", st.apply_config)
        self.config.add_applier("allocations", self._reallocate_on_strategy_change)
        self.config.add_restart_check(restart_needed)
        self.config.add_applier("journal", lambda c: setattr(st.journal, "commit_interval_ms",
                                                              c.journal.commit_interval_ms))
        self.metrics.add_collector(self._component_metrics)
        self.metrics.add_collector(self._mode_metrics)
        self.metrics.add_collector(self.plane.collect_metrics)
        for sid, service in self.model_services.items():
            self.config.add_applier(f"hmm:{sid}", lambda c, svc=service: svc.apply_config(c.hmm))
        if len(self.model_services) == 1:
            self.metrics.add_collector(next(iter(self.model_services.values())).collect_metrics)
        elif self.model_services:
            self.metrics.add_collector(self._model_metrics)
        self.trading_metrics = TradingMetrics(self.metrics, st)
        self.trade_log = TradeLog(self.bus)  # subscribed before the engine attaches (see obs.trade_log)
        self.bus.subscribe(TradingStateChanged, self._on_trading_state, name="node")
        self._journal_events()

    # ------------------------------------------------------------------ wiring

    def _build_control_plane(self, cfg: Config) -> ControlPlane:
        """Allocator (with the bandit) and governance around the stack's router; each reads its
        [control] section from the current config (live)."""
        st = self.stack
        control = lambda: self.config.current.control  # noqa: E731
        bandit = BanditFeedback(lambda: control().bandit, self.state_dir / cfg.control.bandit.state_file)
        allocator = Allocator(lambda: control().allocator, self.clock, self.bus, st.router.pnl_series,
                              self._share_bounds, st.router.set_shares,
                              self.state_dir / cfg.control.allocator.state_file, bandit,
                              capital_usd=st.router.capital_usd)
        inputs = RouterGovernanceInputs(st.router, self.clock, st.instruments_by_strategy, st.marks.marks,
                                        st.marks.last_ns, self._venue_ok, st.instrument_sessions)
        # the same mapping object: governance sees the model services the node runs
        governance = Governance(lambda: control().governance, self.clock, self.bus, inputs, st.router,
                                self.model_services)
        return ControlPlane(st.router, allocator, governance, describe=self._describe_strategy)

    def _reallocate_on_strategy_change(self, cfg: Config) -> None:
        """A reload that changed the enabled strategies or their bounds rebalances now (a new
        strategy gets capital at once, a removed one's goes back); others wait for the schedule."""
        bounds = self._share_bounds()
        allocator = self.plane.allocator
        if bounds != self._last_bounds and allocator is not None and self.supervisor.is_running(allocator.name):
            allocator.rebalance_now()
        self._last_bounds = bounds

    def _model_metrics(self) -> list[Metric]:
        """Several HMM strategies: each service's families merged under one name, every sample
        labelled with its `strategy` (one registry cannot hold a family twice)."""
        merged: dict[str, Metric] = {}
        for sid, service in self.model_services.items():
            for fam in service.collect_metrics():
                out = merged.get(fam.name)
                if out is None:
                    out = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                out.samples.extend(smp._replace(labels={"strategy": sid, **smp.labels}) for smp in fam.samples)
        return list(merged.values())

    def _share_bounds(self) -> dict[str, ShareBounds]:
        """The enabled strategies' (min_share, max_share, weight) from the current config."""
        return {s.id: ShareBounds(s.min_share, s.max_share, s.weight)
                for s in self.stack.instances.values() if s.enabled and s.id in self.stack.strategies}

    def _venue_ok(self, venue: str) -> bool:
        """A venue is running, healthy and not halted (governance's stale-data rule)."""
        v = self.stack.venues.get(venue)
        if v is None or not self.supervisor.is_running(v.name) or not v.health().ok:
            return False
        return self.stack.gate.venue_state(venue) is not TradingState.HALTED

    def _describe_strategy(self, strategy_id: str) -> dict[str, Any]:
        """A strategy's own fields beside its router row (GET /strategies)."""
        strategy = self.stack.strategies.get(strategy_id)
        inst = self.stack.instances.get(strategy_id)
        if strategy is None:
            return {}
        return {"kind": strategy.kind, "enabled": inst.enabled if inst is not None else True,
                "min_share": inst.min_share if inst is not None else None,
                "max_share": inst.max_share if inst is not None else None,
                "status": strategy.status()}

    def _build_model_services(self, cfg: Config) -> dict[str, ModelService]:
        """A ModelService per HMM strategy, its registry scoped `<registry>/<strategy id>`; the
        one-strategy `[strategy] kind = "hmm"` keeps the registry itself (older state dirs)."""
        out: dict[str, ModelService] = {}
        hmm = {sid: s for sid, s in self.stack.strategies.items() if isinstance(s, HmmStrategy)}
        for sid, strategy in hmm.items():
            scope = None if not cfg.strategies else sid
            service = build_model_service(cfg.hmm, strategy, self.bus, self.clock, self.state_dir,
                                          history=self._venue_history, scope=scope)
            if len(hmm) > 1:
                service.name = f"models:{sid}"  # supervised components have unique names
            out[sid] = service
        return out

    async def _venue_history(self, iid: InstrumentId, interval_s: int, n_bars: int) -> BarArrays:
        """Past bars of `iid` from its venue (the models component warms up on them)."""
        venue = self.stack.venues.get(iid.venue)
        if not isinstance(venue, HistoryVenue):
            raise LookupError(f"venue {iid.venue!r} serves no past bars")
        return await venue.history_bars(iid, interval_s, n_bars)

    def _build_trading(self, cfg: Config) -> TradingStack:
        """Journal (opened now: a corrupt or newer database stops the start), venues, stack."""
        # Private when we create it (the journal holds every order and fill; systemd's
        # StateDirectory= is 0700 too); an existing one is left as it is (the journal warns).
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        journal = Journal.open_config(cfg.journal, self.state_dir)
        # Nothing that fails after the journal opened may leave it open: in this process its
        # lock would refuse the next open, and the failure report must not wait on it.
        try:
            # Monitor mode: venues write nothing to the account either (read-only API keys suffice).
            venues = build_venues(cfg, self.bus, self.clock, self.state_dir, read_only=cfg.node.mode == MONITOR)
            stack = build_stack(cfg, self.bus, self.clock, journal, venues, durable=True)
            # [node] mode (restart-only): the engine's order gate, set before anything starts.
            stack.engine.order_gate = OrderGate(cfg.node.mode)
            self.trading = TradingStarter(stack, TradingState(cfg.risk.initial_state),
                                          snapshot_interval_s=lambda: self.config.current.journal.snapshot_interval_s)
        except BaseException:
            self._close_journal_after_failed_build(journal)
            raise
        return stack

    def _close_journal_after_failed_build(self, journal: Journal | None = None) -> None:
        """Close the journal after the build failed; a close that fails too is logged, and the
        build's own error is the one raised."""
        journal = journal if journal is not None else self.stack.journal
        try:
            journal.close()
        except Exception as exc:  # the build's error is the report; this one is a line beside it
            log.error("journal_close_failed", path=str(journal.path), error=str(exc))

    def _journal_events(self) -> None:
        """Audit and control events go to the journal (batched, not on the hot path)."""
        j = self.stack.journal
        self.bus.subscribe(AdminAction, lambda m: j.record_audit(m.ts_event_ns, m.action, m.remote, m.params,
                                                                m.result), name="journal")
        for cls in (RiskDenied, TradingStateChanged, VenueTradingStateChanged, BreakerStateChanged,
                    ReconciliationCompleted, JournalGapDetected, ConfigApplied, ConfigRejected, PolicyDecision,
                    ModelChanged, StrategyStateChanged, AllocationChanged, GovernanceDecision, RouterDenied,
                    ExecutionCorrected, MarketDataQualityChanged):
            self.bus.subscribe(cls, lambda m: j.record_event(m.ts_event_ns, type(m).__name__, m), name="journal")

    def _policy_with(self, give_up: GiveUp) -> RestartPolicy:
        p = self._policy
        return RestartPolicy(p.max_restarts, p.window_s, p.backoff_initial_s, p.backoff_max_s, p.jitter, give_up)

    def _web_context(self) -> WebContext:
        cfg = lambda: self.config.current  # noqa: E731
        model_extra, model_admin = (model_routes(self.models, self.model_services) if self.models is not None
                                    else ([], []))
        control_extra, control_admin = control_routes(self.plane)
        return WebContext(
            bus=self.bus,
            clock=self.clock,
            metrics=self.metrics,
            token=lambda: self._token,
            status=self.status,
            readiness=self.readiness,
            message_types=all_message_types(),
            sse_queue_size=lambda: cfg().http.sse_queue_size,
            sse_heartbeat_s=lambda: cfg().http.sse_heartbeat_s,
            allowed_hosts=lambda: cfg().http.allowed_hosts,
            extra_routes=trading_routes(self.stack) + model_extra + control_extra,
            admin=[
                AdminAct("/admin/reload", "Re-read config.toml and apply live fields", self._admin_reload,
                         responses={200: "applied or unchanged", 400: "invalid config, with errors",
                                    409: "restart-only fields changed"}),
                AdminAct("/admin/kill", "Halt trading (optionally cancel open orders and flatten)",
                         self._admin_kill,
                         responses={200: "halted (or reducing while flattening)",
                                    409: "cancel_orders or flatten on a node in monitor mode"},
                         body=(Param("reason", str, "why, for the audit log"),
                               Param("cancel_orders", bool, "cancel every open order"),
                               Param("flatten", bool, "close every position at market"))),
                AdminAct("/admin/resume", "Resume trading (state ACTIVE); with venue, lift only that "
                         "venue's own halt", self._admin_resume,
                         body=(Param("reason", str, "why, for the audit log"),
                               Param("venue", str, "resume only this venue (one halted when its component "
                                                   "gave up); the global state is left as it is"))),
                AdminAct("/admin/reduce", "Only exposure-reducing orders (state REDUCING)", self._admin_reduce,
                         body=(Param("reason", str, "why, for the audit log"),)),
                *model_admin,
                *control_admin,
            ],
        )

    def _mode_metrics(self) -> list[Any]:
        """The node's mode (1 for the configured one) and what monitor mode kept from the venues."""
        gate = self.stack.engine.order_gate
        return [
            gauge_family("nautilus_hmm_node_mode", "1 for the node's mode: trade, or monitor (never sends orders)",
                         ["mode"], [([m], 1.0 if m == gate.mode else 0.0) for m in MODES]),
            counter_family("monitor_withheld", "Orders (submit) and cancels (cancel) monitor mode kept from "
                           "the venues", ["action"], [([a], float(n)) for a, n in sorted(gate.counts.items())]),
        ]

    def _component_metrics(self) -> list[Any]:
        up, restarts = [], []
        counts = self.supervisor.restarts()
        for comp in self.supervisor.components:
            healthy = comp.health().ok and self.supervisor.is_running(comp.name)
            up.append(([comp.name], 1.0 if healthy else 0.0))
            restarts.append(([comp.name], float(counts.get(comp.name, 0))))
        return [
            gauge_family("component_up", "1 when the component runs and is healthy", ["component"], up),
            gauge_family("component_restarts", "Restarts since the node started", ["component"], restarts),
        ]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every component in order, then tell systemd we are ready."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._token = self._load_token()
        self.loop_monitor.starting = True  # its pings extend systemd's start timeout until READY
        try:
            await self.supervisor.start_all()
        finally:
            self.loop_monitor.starting = False
        self.config.loaded_at_ns = self.clock.time_ns()
        self.notifier.ready(self._sd_status())
        if self.stack.engine.order_gate.monitor:
            log.warning("node_mode_monitor", hint="no order or cancel is ever sent; admin flatten and "
                        "cancel_orders answer 409; set [node] mode = \"trade\" and restart to trade")
        log.info("node_ready", version=__version__, mode=self.stack.engine.order_gate.mode,
                 config_hash=self.config.hash, http_port=self.web.bound_port, state_dir=str(self.state_dir))

    async def abort_start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """After a failed start: stop what started (reverse order), close the journal and the
        listener even where their components never started, drop the signal handlers."""
        self._stopping = True
        await self.supervisor.stop_all()
        # Each step runs even when one before it fails; a failure is one line naming the step.
        for step, close in (("journal", self.stack.journal.aclose), ("http", self.web.stop)):
            try:
                await close()
            except Exception as exc:
                log.error("node_abort_step_failed", step=step, error=str(exc) or repr(exc))
        if loop is not None:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def stop(self) -> None:
        """Stop every component in reverse order."""
        if self._stopping:
            return
        self._stopping = True
        self.notifier.stopping()
        log.info("node_stopping")
        await self.supervisor.stop_all()
        log.info("node_stopped", exit_code=self.exit_code)

    def request_stop(self, exit_code: int = EXIT_OK, reason: str = "") -> None:
        """Ask the node to stop (idempotent; the worst exit code wins)."""
        self.exit_code = max(self.exit_code, exit_code)
        if not self._stop_requested.is_set():
            log.info("node_stop_requested", reason=reason, exit_code=exit_code)
        self._stop_requested.set()

    async def wait_stop_requested(self) -> None:
        """Block until a signal, an admin request or a give-up asks us to stop."""
        await self._stop_requested.wait()

    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGTERM/SIGINT: graceful stop (second one: exit now). SIGHUP: reload."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            log.error("second_stop_signal_exiting_now", signal=sig.name)
            os._exit(EXIT_FATAL)
        log.info("stop_signal", signal=sig.name)
        self.request_stop(EXIT_OK, f"signal {sig.name}")

    def _on_sighup(self) -> None:
        # A signal callback must never raise (asyncio would log it and drop it, with a
        # half-done reload behind); ConfigManager.reload itself never raises either.
        try:
            self.reload("SIGHUP")
        except Exception as exc:
            log.error("config_reload_failed", source="SIGHUP", error=repr(exc), exc_info=exc)

    async def _on_give_up(self, name: str, policy: GiveUp, error: BaseException | None) -> None:
        if policy is GiveUp.SHUTDOWN:
            self.request_stop(EXIT_FATAL, f"component {name} gave up: {error!r}")
        elif policy is GiveUp.HALT_TRADING:
            self.set_trading_state(TradingState.HALTED, f"component {name} gave up", "supervisor")
        elif policy is GiveUp.HALT_VENUE:
            # Only that venue's instruments stop; other venues trade on (risk gate, per venue).
            self.set_trading_state(TradingState.HALTED, f"venue component {name} gave up: {error!r}",
                                   "supervisor", venue=name)

    def _load_token(self) -> str:
        try:
            token = admin_token()
        except OSError as exc:  # $CREDENTIALS_DIRECTORY/admin-token is damaged
            where = getattr(exc, "filename", None) or Path(os.environ.get("CREDENTIALS_DIRECTORY", "")) / "admin-token"
            problem = exc.strerror or str(exc)  # core.secrets: CredentialError when not UTF-8
            raise StartError("admin token credential", where, problem,
                             "fix the systemd credential 'admin-token' (LoadCredential=) so it is a text file, "
                             "or set NAUTILUS_HMM_ADMIN_TOKEN") from exc
        if token:
            obs_logging.register_secret(token)
            return token
        path = self.state_dir / "admin-token"
        try:
            return self._state_dir_token(path)
        except (OSError, UnicodeDecodeError) as exc:  # a directory in its place, unreadable, not
            # text, a full disk: the start stops; only the offset of a bad byte (it is the token's)
            problem = (f"not UTF-8 text (an invalid byte at offset {exc.start})"
                       if isinstance(exc, UnicodeDecodeError) else exc.strerror or str(exc))
            raise StartError("admin token file", path, problem,
                             f"make {path} a file this user can read and write (or remove it to have a new "
                             "token written), or set NAUTILUS_HMM_ADMIN_TOKEN / a systemd credential "
                             "'admin-token'") from exc

    def _state_dir_token(self, path: Path) -> str:
        """The token in `path`, written there first when the file is missing or empty."""
        token = ""
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            mode = path.stat().st_mode & 0o777
            if token and mode & 0o077:
                # Used anyway (refusing would lock the operator out), but said loudly.
                log.warning("admin_token_file_permissive", path=str(path), mode=f"{mode:04o}",
                            hint=f"other users can read the admin token: chmod 600 {path}")
        if not token:
            token = secrets.token_urlsafe(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # an existing (empty) file keeps its mode through open()
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(token + "\n")
        obs_logging.register_secret(token)
        log.warning("admin_token_from_state_dir", path=str(path),
                    hint="set NAUTILUS_HMM_ADMIN_TOKEN or a systemd credential 'admin-token' in production")
        return token

    # ------------------------------------------------------------------ control

    def reload(self, source: str) -> ReloadResult:
        """Reload the config file, telling systemd around it."""
        self.notifier.reloading()
        try:
            return self.config.reload(source)
        finally:
            self.notifier.ready(self._sd_status())

    def set_trading_state(self, new: TradingState, reason: str, source: str, venue: str | None = None) -> None:
        """Move the global trading state, or one venue's own state when `venue` is given (the
        risk gate owns both); publishes TradingStateChanged / VenueTradingStateChanged."""
        if venue is None:
            self.stack.gate.set_state(new, reason, source)
        else:
            self.stack.gate.set_venue_state(venue, new, reason, source)

    def _on_trading_state(self, msg: TradingStateChanged) -> None:
        self.trading_state = msg.new  # the risk gate logs trading_state_changed
        self.notifier.status(self._sd_status())

    async def _admin_reload(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = self.reload("admin")
        body = {"result": r.result, "config_hash": r.config_hash, "changed": r.changed}
        if r.result == "invalid" or r.result == "failed":
            return 400, {**body, "errors": r.errors}
        if r.result == "restart_required":
            return 409, {**body, "restart_required": r.restart_required}
        return 200, body

    async def _admin_kill(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        reason = params.get("reason", "admin kill")
        eng = self.stack.engine
        if eng.order_gate.monitor and (params.get("flatten") or params.get("cancel_orders")):
            # Refused whole (the state is not changed either): a plain kill halts.
            return 409, OrderEntryDisabled("flatten" if params.get("flatten") else "cancel_orders").body()
        result: dict[str, Any] = {}
        if params.get("flatten"):
            # Flatten orders reduce exposure: they pass in REDUCING; HALTED once flat.
            self.set_trading_state(TradingState.REDUCING, f"kill, flattening: {reason}", "admin")
            result["flatten_orders"] = eng.flatten(reason)
            eng.spawn(self._halt_when_flat(reason), "halt-when-flat")
        else:
            self.set_trading_state(TradingState.HALTED, reason, "admin")
        if params.get("cancel_orders"):
            result["cancel_requests"] = await eng.cancel_all(reason)
        return 200, {"trading_state": self.trading_state.value, **result}

    async def _halt_when_flat(self, reason: str, timeout_s: float = 120.0) -> None:
        eng = self.stack.engine
        waited = 0.0
        while not eng.is_flat() and waited < timeout_s:
            await self.clock.sleep(0.5)
            waited += 0.5
        flat = eng.is_flat()
        outcome = "flat" if flat else f"NOT flat after {timeout_s:.0f}s"
        self.set_trading_state(TradingState.HALTED, f"kill: {reason} ({outcome})", "admin")
        if not flat:
            log.error("flatten_incomplete", positions=eng.position_views())

    async def _admin_resume(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        venue = params.get("venue")
        if venue is not None:
            if venue not in self.stack.venues:
                return 400, {"error": f"venue = {venue!r}: not a venue of this node "
                                      f"(venues: {', '.join(sorted(self.stack.venues))})"}
            self.set_trading_state(TradingState.ACTIVE, params.get("reason", "admin resume"), "admin", venue=venue)
            return 200, {"trading_state": self.trading_state.value,
                         "venue_state": self.stack.gate.venue_state(venue).value}
        self.stack.engine.flattening = False
        self.set_trading_state(TradingState.ACTIVE, params.get("reason", "admin resume"), "admin")
        return 200, {"trading_state": self.trading_state.value}

    async def _admin_reduce(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.set_trading_state(TradingState.REDUCING, params.get("reason", "admin reduce"), "admin")
        return 200, {"trading_state": self.trading_state.value}

    # ------------------------------------------------------------------ views

    def _sd_status(self) -> str:
        mode = " mode=monitor" if self.stack.engine.order_gate.monitor else ""  # `systemctl status` says so
        return f"trading={self.trading_state.value}{mode} config={self.config.hash}"

    def uptime_s(self) -> float:
        """Seconds since the node object was created."""
        return time.monotonic() - self.started_monotonic

    def readiness(self) -> tuple[bool, list[str]]:
        """Ready when every component is running and healthy."""
        reasons = []
        for comp in self.supervisor.components:
            h = comp.health()
            if not self.supervisor.is_running(comp.name):
                reasons.append(f"{comp.name}: {self.supervisor.child_state(comp.name)['state']}")
            elif not h.ok:
                reasons.append(f"{comp.name}: {h.detail}")
        return not reasons, reasons

    @property
    def trading_state_reason(self) -> str:
        """Why trading is in its state: the risk gate's own reason (a failed start-up
        reconciliation leaves the state HALTED, publishing no TradingStateChanged, and only
        sets the reason)."""
        return self.stack.gate.state_reason

    def status(self) -> dict[str, Any]:
        """The /status document."""
        comps = {}
        for comp in self.supervisor.components:
            h = comp.health()
            comps[comp.name] = {**self.supervisor.child_state(comp.name), "healthy": h.ok,
                                "detail": h.detail, **({"info": h.info} if h.info else {})}
        return {
            "version": __version__,
            "uptime_s": round(self.uptime_s(), 3),
            "mode": self.stack.engine.order_gate.mode,
            "trading_state": self.trading_state.value,
            "trading_state_reason": self.trading_state_reason,
            "components": comps,
            "config": {"hash": self.config.hash, "path": str(self.config.path),
                       "loaded_at_ns": self.config.loaded_at_ns},
            "loop_lag_p99_s": self.loop_monitor.lag_quantile_s(0.99),
            "risk": self.stack.gate.status(),
            "pnl": self.stack.engine.pnl_view(),
            "positions": self.stack.engine.position_views(),
            "open_orders": self.stack.engine.order_views(open_only=True, limit=100),
            **({"monitor": self.stack.engine.order_gate.status()} if self.stack.engine.order_gate.monitor else {}),
            "execution": {**self.stack.engine.counts, "unknown_outcome": sorted(self.stack.engine.unknown_outcome),
                          "discrepancies": self.stack.engine.discrepancies[-10:]},
            "reconciliation": self.stack.reconciler.status() if self.stack.reconciler else {},
            "strategy": self.stack.strategy.status() if self.stack.strategies else {},
            "strategies": {sid: strat.status() for sid, strat in self.stack.strategies.items()},
            "house": self.stack.router.house_view(),  # what no strategy owns (positions found at start ...)
            **({"models": self.models.status()} if self.models is not None else {}),
            **({"model_services": {sid: m.status() for sid, m in self.model_services.items()}}
               if len(self.model_services) > 1 else {}),
        }

    def _heartbeat_fields(self) -> dict[str, object]:
        return {
            "uptime_s": round(self.uptime_s(), 1),
            "trading_state": self.trading_state.value,
            "mode": self.stack.engine.order_gate.mode,
            "loop_lag_p99_ms": round(self.loop_monitor.lag_quantile_s(0.99) * 1000, 3),
            "config_hash": self.config.hash,
        }

    def effective_config(self) -> dict[str, Any]:
        """The active config as a dict (no secrets are ever in it)."""
        return to_dict(self.config.current)


async def _start_unless_stopped(node: Node) -> bool:
    """Start the node; False (the start cancelled) when a stop is requested first. A start
    that fails raises its exception."""
    start = asyncio.ensure_future(node.start())
    stop = asyncio.ensure_future(node.wait_stop_requested())
    try:
        await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if start.done():
        start.result()
        return True
    start.cancel()
    try:
        await start
    except asyncio.CancelledError:
        pass
    return False


# Young-generation threshold after start-up (CPython's default is 700 allocations): a
# gen-0 pass every 700 net allocations is ~one per order on the hot path.
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Once started: move everything alive (modules, config, instruments, the wired stack)
    into the permanent generation (`gc.freeze`: a list splice, no pass over the heap), so no
    later collection walks it again, and make gen-0 passes rarer. Garbage is still freed
    (reference counting does most of it; cycles wait longer for a pass). No `gc.collect()`
    first: a full pass over the start-up heap blocked the loop for 50-300 ms (this VM, under
    load) right as trading starts; the few start-up cycles it would free stay frozen."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def run_node(config: Config, config_path: str | Path) -> int:
    """Run a node until stopped; return the process exit code."""
    loop = asyncio.get_running_loop()
    # Listen before anything is created: a port in use (another daemon on this state
    # dir, a stale process) stops the start here with one line, leaving no new
    # journal, token or account file behind.
    address = f"{config.http.host}:{config.http.port}"
    try:
        http_socket = bind_listener(config.http.host, config.http.port)
    except OSError as exc:
        failure = bind_failure(exc, address)
        log.critical("http_bind_failed", address=address, **failure.fields())
        return failure.exit_code
    # A failed build or start is one critical line (what, where, what to do; describe()),
    # never a traceback; whatever started is stopped in reverse order and the journal
    # closed before the exit code is returned.
    node: Node | None = None
    try:
        node = Node(config, config_path, http_socket=http_socket)
        node.install_signal_handlers(loop)
        if not await _start_unless_stopped(node):
            # SIGTERM during a long start (a venue that does not answer, a ban): what started
            # stops now, not after the start's own timeouts; it is not a failure.
            log.info("node_start_abandoned", reason="stop requested while starting")
            await node.abort_start(loop)
            return node.exit_code
    except Exception as exc:
        venues = node.stack.venues if node is not None else {}
        failure = describe(exc, resolve_state_dir(config),
                           {name: str(getattr(v, "rest_url", "")) for name, v in venues.items()})
        failed = [c.name for c in node.supervisor.components
                  if node.supervisor.child_state(c.name)["state"] == "failed"] if node is not None else []
        log.critical("node_start_failed", **({"component": failed[0]} if failed else {}), **failure.fields())
        if not failure.known:
            log.debug("node_start_failed_traceback", exc_info=exc)
        if node is None:
            http_socket.close()
        else:
            await node.abort_start(loop)
        return failure.exit_code
    tune_gc()  # module global: benchmarks/tick_to_order_bench.py --no-gc-tune replaces it
    await node.wait_stop_requested()
    deadline = node.config.current.node.graceful_stop_timeout_s
    try:
        await asyncio.wait_for(node.stop(), timeout=deadline)
    except TimeoutError:
        log.error("graceful_stop_deadline_exceeded", deadline_s=deadline)
        return EXIT_FATAL
    return node.exit_code
