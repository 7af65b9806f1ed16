"""Trading sessions of an instrument: when its venue trades it (issue 14).

A `TradingSessions` is a sorted tuple of half-open UTC intervals `[start_ns, end_ns)` plus the
end of the calendar it was built from (`known_until_ns`). Crypto instruments have none
(`Instrument.sessions is None`: they trade 24/7); `always_open()` is the explicit form.

IB's `ContractDetails.tradingHours` / `liquidHours` come in two formats, both parsed:

* old (API < 9.72): `20090507:0700-1830,1830-2330;20090508:CLOSED` — a trade date, then
  local `HHMM-HHMM` ranges. A range whose end is not after its start crosses midnight and
  opens on the calendar day BEFORE the trade date (the CME convention: the Sunday-evening
  session belongs to Monday's trade date).
* new: `20180323:0400-20180323:2000;20180326:CLOSED` — each end carries its own date, so an
  overnight session reads `20180325:1700-20180326:1600`.

Times are local to the contract's `timeZoneId` (e.g. `US/Eastern`, `America/New_York`), read
through `zoneinfo`, so a session keeps its local hours across DST changes. Overlapping or
touching ranges merge into one session. Beyond `known_until_ns` (IB lists only the next few
days) `is_open` says False, and callers that must fail safe (the stale-data rail) check
`is_known(ts_ns)`: a calendar that ran out is not a reason to stay quiet.

`TradingSessions()` (no intervals, no calendar) stands for "has sessions, calendar unknown":
every `is_session_break` then comes from the quiet-stretch rule (`train --session-gaps`).

Pure logic: no asyncio, no venue import.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_NS = 1_000_000_000
_AFTER_ALL = float("inf")
_DAY_RE = re.compile(r"^\d{8}$")
_HHMM_RE = re.compile(r"^\d{4}$")


@dataclass(frozen=True, slots=True)
class TradingSessions:
    """Sorted, merged, half-open UTC session intervals `[start_ns, end_ns)` of one instrument."""

    intervals_ns: tuple[tuple[int, int], ...] = ()
    time_zone_id: str = "UTC"
    known_until_ns: int | None = None  # end of the listed calendar; None with always_open
    always: bool = False

    def __post_init__(self) -> None:
        prev_end = None
        for start, end in self.intervals_ns:
            if end <= start:
                raise ValueError(f"trading session [{start}, {end}) ends before it starts")
            if prev_end is not None and start <= prev_end:
                raise ValueError("trading sessions must be sorted and merged")
            prev_end = end

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def always_open(cls) -> TradingSessions:
        """Sessions of an instrument that trades around the clock (every ts is open)."""
        return cls(always=True)

    @classmethod
    def from_ib(cls, trading_hours: str, time_zone_id: str) -> TradingSessions:
        """Parse IB's `tradingHours` (either format) in `time_zone_id`; ValueError names the bad part."""
        try:
            tz = ZoneInfo(time_zone_id)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValueError(f"trading hours: unknown time zone {time_zone_id!r}") from exc
        text = (trading_hours or "").strip()
        if not text:
            raise ValueError(f"trading hours: empty ({trading_hours!r})")
        ranges: list[tuple[int, int]] = []
        last_day: date | None = None
        for raw in text.split(";"):
            segment = raw.strip()
            if not segment:
                continue  # IB ends some strings with ';'
            day, parsed = _parse_segment(segment, tz)
            ranges.extend(parsed)
            last_day = day if last_day is None or day > last_day else last_day
        if last_day is None:
            raise ValueError(f"trading hours: no segment in {trading_hours!r}")
        known_until = _local_ns(last_day + timedelta(days=1), time(0, 0), tz)
        known_until = max([known_until, *(end for _, end in ranges)])
        return cls(_merge(ranges), time_zone_id, known_until)

    # -- queries --------------------------------------------------------------------------

    def is_open(self, ts_ns: int) -> bool:
        """True when `ts_ns` (UTC epoch ns) falls inside a session."""
        if self.always:
            return True
        return self._index(ts_ns) is not None

    def is_known(self, ts_ns: int) -> bool:
        """True when `ts_ns` is inside the listed calendar (before `known_until_ns`)."""
        return self.always or (self.known_until_ns is not None and ts_ns < self.known_until_ns)

    def session_start_ns(self, ts_ns: int) -> int | None:
        """Start of the session containing `ts_ns`; None when closed (0 for always_open)."""
        if self.always:
            return 0
        i = self._index(ts_ns)
        return None if i is None else self.intervals_ns[i][0]

    def session_end_ns(self, ts_ns: int) -> int | None:
        """End (exclusive) of the session containing `ts_ns`; None when closed or always open."""
        if self.always:
            return None
        i = self._index(ts_ns)
        return None if i is None else self.intervals_ns[i][1]

    def next_open_ns(self, ts_ns: int) -> int | None:
        """`ts_ns` when open, else the start of the next listed session; None past the calendar."""
        if self.always or self._index(ts_ns) is not None:
            return ts_ns
        i = bisect.bisect_right(self.intervals_ns, (ts_ns, _AFTER_ALL))
        return self.intervals_ns[i][0] if i < len(self.intervals_ns) else None

    def _index(self, ts_ns: int) -> int | None:
        # (ts, +inf) sorts after every interval starting at or before ts
        i = bisect.bisect_right(self.intervals_ns, (ts_ns, _AFTER_ALL)) - 1
        if i >= 0 and ts_ns < self.intervals_ns[i][1]:
            return i
        return None


def iso_utc(ts_ns: int) -> str:
    """`ts_ns` as ISO-8601 UTC text, for messages (e.g. `2023-11-15T14:30:00+00:00`)."""
    return datetime.fromtimestamp(ts_ns // _NS, UTC).isoformat()


def _parse_segment(segment: str, tz: ZoneInfo) -> tuple[date, list[tuple[int, int]]]:
    """One `;`-separated segment: `DAY:CLOSED`, `DAY:HHMM-HHMM[,..]` or `DAY:HHMM-DAY:HHMM[,..]`."""
    day_text, sep, rest = segment.partition(":")
    if not sep or not _DAY_RE.match(day_text):
        raise ValueError(f"trading hours segment {segment!r}: expected 'YYYYMMDD:...'")
    day = _day(day_text, segment)
    if rest.strip().upper() == "CLOSED":
        return day, []
    out: list[tuple[int, int]] = []
    for part in rest.split(","):
        start_text, dash, end_text = part.strip().partition("-")
        if not dash:
            raise ValueError(f"trading hours segment {segment!r}: range {part!r} has no '-'")
        start_day_or_none, start_hm = _day_time(start_text, day, segment)
        start_day = day if start_day_or_none is None else start_day_or_none
        end_day, end_hm = _day_time(end_text, None, segment)
        if end_day is None:  # old format: both ends on the trade date, or crossing midnight
            end_day = start_day
            if (end_hm.hour, end_hm.minute) <= (start_hm.hour, start_hm.minute) and not _is_2400(end_text):
                start_day = start_day - timedelta(days=1)
        start_ns = _local_ns(start_day, start_hm, tz)
        end_ns = _local_ns(end_day, end_hm, tz) if not _is_2400(end_text) else _local_ns(
            end_day + timedelta(days=1), time(0, 0), tz)
        if end_ns <= start_ns:
            raise ValueError(f"trading hours segment {segment!r}: range {part!r} ends before it starts")
        out.append((start_ns, end_ns))
    return day, out


def _day_time(text: str, default_day: date | None, segment: str) -> tuple[date | None, time]:
    """`HHMM` (day = default_day) or `YYYYMMDD:HHMM`."""
    text = text.strip()
    day = default_day
    if ":" in text:
        day_text, _, text = text.partition(":")
        if not _DAY_RE.match(day_text):
            raise ValueError(f"trading hours segment {segment!r}: bad date {day_text!r}")
        day = _day(day_text, segment)
    if not _HHMM_RE.match(text):
        raise ValueError(f"trading hours segment {segment!r}: bad time {text!r} (expected HHMM)")
    hour, minute = int(text[:2]), int(text[2:])
    if text == "2400":
        return day, time(0, 0)
    if hour > 23 or minute > 59:
        raise ValueError(f"trading hours segment {segment!r}: bad time {text!r}")
    return day, time(hour, minute)


def _is_2400(text: str) -> bool:
    return text.strip().endswith("2400")


def _day(text: str, segment: str) -> date:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError as exc:
        raise ValueError(f"trading hours segment {segment!r}: bad date {text!r}") from exc


def _local_ns(day: date, hm: time, tz: ZoneInfo) -> int:
    """Local wall time in `tz` as UTC epoch ns (a time skipped by DST resolves as fold=0)."""
    local = datetime.combine(day, hm, tzinfo=tz)
    return int(local.timestamp()) * _NS


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sort and merge overlapping or touching ranges."""
    out: list[list[int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return tuple((s, e) for s, e in out)


def data_age_ref_ns(sessions: TradingSessions | None, last_ns: int, now_ns: int) -> int | None:
    """The time a stale-data monitor counts data age from at `now_ns`.

    `last_ns` unchanged for a 24/7 instrument (`sessions` None: the crypto path as before) and
    past the end of the listed calendar (fail safe: an expired calendar is no reason to stay
    quiet). None while the session is known to be closed: no data is expected, so nothing is
    stale. Inside a session: the later of `last_ns` and the session's start, so the first data
    after the open has the monitor's whole limit to arrive.
    """
    if sessions is None or sessions.always or not sessions.is_known(now_ns):
        return last_ns
    start = sessions.session_start_ns(now_ns)
    if start is None:
        return None
    return max(last_ns, start)


SESSION_GAP_S = 15 * 60
"""Outside the listed calendar (history older than IB's few listed days), a stretch of at
least this long without a bar is taken as a session break (the shortest common break: the
15-minute CME equity-futures halt)."""


def is_session_break(sessions: TradingSessions | None, prev_ts_ns: int | None, ts_ns: int,
                     bar_interval_s: int) -> bool:
    """True when the bar opening at `ts_ns` is the first of a new trading session relative to
    the bar that opened at `prev_ts_ns`: its calendar puts a session start after the previous
    bar, or (beyond the calendar) at least `SESSION_GAP_S` passed without a bar. Never for a
    24/7 instrument (`sessions` None or always open): the crypto path is unchanged."""
    if sessions is None or sessions.always or prev_ts_ns is None:
        return False
    start = sessions.session_start_ns(ts_ns)
    if start is not None and start > prev_ts_ns:
        return True
    return ts_ns - (prev_ts_ns + bar_interval_s * _NS) >= SESSION_GAP_S * _NS
