"""[notify] — which event classes go to which channels, and how fast.

The TOML names channels and routes event classes to them; a channel's URL (which holds
its token or password) is a secret and never appears here: it is read at start from
`$NAUTILUS_HMM_NOTIFY_<NAME>_URL` or the systemd credential `notify-<name>-url`
(`channel_env_var`, `channel_credential`).

    [notify]
    enabled = true
    [notify.channels.ops]
    rate_per_min = 20
    [notify.routes]
    fills = ["ops"]
    risk_denials = ["ops"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nautilus_hmm.core.fields import setting

# Event class -> what it covers (the keys of [notify.routes]; docs/OPERATIONS.md lists them).
EVENT_CLASSES: dict[str, str] = {
    "fills": "every fill (Fill)",
    "order_rejects": "orders the venue rejected (OrderEvent with status REJECTED)",
    "risk_denials": "orders the risk gate denied (RiskDenied)",
    "breaker_trips": "a venue's error breaker opened, half-opened or closed (BreakerStateChanged)",
    "trading_state": "global or per-venue trading state changes (TradingStateChanged, VenueTradingStateChanged)",
    "reconciliation": "reconciliation mismatches (ReconciliationCompleted with discrepancies, JournalGapDetected)",
    "models": "model promoted, rolled back, trained or failed to train (ModelChanged)",
    "governance": "decisions of the control plane's governance rules (GovernanceDecision)",
    "daemon": "daemon started and stopping, a component that gave up (ComponentStateChanged)",
    "daily_summary": "once a day: PnL, fees, trades and drawdown",
}

# A channel name becomes part of an environment variable name: letters, digits, '_'.
_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def channel_env_var(name: str) -> str:
    """The environment variable holding channel `name`'s URL: NAUTILUS_HMM_NOTIFY_<NAME>_URL."""
    return f"NAUTILUS_HMM_NOTIFY_{name.upper()}_URL"


def channel_credential(name: str) -> str:
    """The systemd credential holding channel `name`'s URL: notify-<name>-url."""
    return f"notify-{name.replace('_', '-')}-url"


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """[notify.channels.<name>] — one destination (its URL comes from the environment)."""

    rate_per_min: float = setting(
        20.0, live=False, ge=0.1, le=6000,
        doc="messages per minute this channel may send (token bucket); beyond it messages wait, "
            "and the coalescer merges what piles up",
    )
    burst: int = setting(5, live=False, ge=1, le=1000, doc="messages the channel may send back to back")
    max_retries: int = setting(3, live=False, ge=0, le=20, doc="retries of a failed send before it is dropped")
    retry_backoff_s: float = setting(2.0, live=False, ge=0.01, le=3600,
                                     doc="first retry delay; doubles per retry")
    retry_backoff_max_s: float = setting(60.0, live=False, ge=0.01, le=3600, doc="retry delay cap")
    outbox_size: int = setting(
        100, live=False, ge=1, le=100_000,
        doc="messages waiting for this channel (rate limit, a slow or dead receiver); beyond it the "
            "oldest is dropped and counted",
    )


def _check_hhmm(value: str) -> str | None:
    return None if _HHMM.fullmatch(value) else "expected HH:MM (UTC, 24-hour), such as \"00:00\""


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """[notify] — notifications: channels, routes, coalescing."""

    enabled: bool = setting(False, live=False, doc="send notifications (channels' URLs from the environment)")
    queue_size: int = setting(
        10_000, live=False, ge=1, le=1_000_000,
        doc="bus messages buffered for the notifier; beyond it messages are dropped and counted",
    )
    gather_s: float = setting(
        1.0, live=False, ge=0.01, le=600,
        doc="a message waits this long for others of its class to merge with it",
    )
    coalesce_window_s: float = setting(
        60.0, live=False, ge=0.1, le=86_400,
        doc="after a message of a class was sent, more of that class within this window go out "
            "as one (\"1000 risk denials in 60 s, e.g. ...\")",
    )
    examples: int = setting(3, live=False, ge=1, le=20, doc="examples quoted in a coalesced message")
    daily_summary_at: str = setting("00:00", live=False, check=_check_hhmm,
                                    doc="when the daily summary is sent (HH:MM UTC)")
    stop_timeout_s: float = setting(
        5.0, live=False, ge=0.1, le=60,
        doc="at stop, wait this long for queued messages (the stop notice included) to be sent",
    )
    channels: dict[str, ChannelConfig] = setting(  # noqa: RUF009 (a field with a default_factory)
        default_factory=dict, live=False,
        doc="[notify.channels.<name>]: name (lowercase letters, digits, '_') -> limits; the URL is "
            "$NAUTILUS_HMM_NOTIFY_<NAME>_URL or the systemd credential notify-<name>-url",
    )
    routes: dict[str, tuple[str, ...]] = setting(  # noqa: RUF009 (a field with a default_factory)
        default_factory=dict, live=False,
        doc="event class -> channel names (classes: " + ", ".join(EVENT_CLASSES) + ")",
    )

    def validate(self) -> list[tuple[str, object, str]]:
        """Channel names usable in a variable name; routes name known classes and channels."""
        out: list[tuple[str, object, str]] = []
        for name in self.channels:
            if not _CHANNEL_NAME.fullmatch(name):
                out.append((f"channels.{name}", {}, "a channel name is 1-32 lowercase letters, digits or '_', "
                                                    "starting with a letter (it names the environment variable)"))
        for event_class, targets in self.routes.items():
            if event_class not in EVENT_CLASSES:
                out.append((f"routes.{event_class}", list(targets),
                            "unknown event class (known: " + ", ".join(EVENT_CLASSES) + ")"))
                continue
            for i, target in enumerate(targets):
                if target not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none"
                    out.append((f"routes.{event_class}[{i}]", target,
                                f"no such channel (declare [notify.channels.{target}]; channels: {known})"))
        if self.enabled and not self.channels:
            out.append(("enabled", True, "no channel declared: add a [notify.channels.<name>] table"))
        return out

    def routed(self) -> dict[str, tuple[str, ...]]:
        """Event class -> channels, only the classes routed somewhere."""
        return {k: v for k, v in self.routes.items() if v}

