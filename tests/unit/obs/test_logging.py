"""Logging: journald priority prefix, JSON lines, secrets never in the output, live level."""

from __future__ import annotations

import io
import re

import orjson
import pytest
import structlog

from nautilus_hmm.obs import logging as obs_logging


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch):
    buf = io.StringIO()
    yield buf
    structlog.reset_defaults()
    obs_logging._State.secrets.clear()
    obs_logging.set_level("info")


def lines(buf: io.StringIO) -> list[str]:
    return [ln for ln in buf.getvalue().splitlines() if ln]


def test_under_journald_each_line_starts_with_the_syslog_priority(stream, monkeypatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    obs_logging.configure("debug", "auto", stream)
    log = structlog.get_logger("t")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    out = lines(stream)
    assert [ln[:3] for ln in out] == ["<7>", "<6>", "<4>", "<3>"]
    record = orjson.loads(out[1][3:])  # JSON by default under journald
    assert record["event"] == "i" and record["level"] == "info" and "ts" in record


def test_without_journald_there_is_no_prefix(stream, monkeypatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    obs_logging.configure("info", "json", stream)
    structlog.get_logger("t").info("hello", x=1)
    (line,) = lines(stream)
    assert orjson.loads(line)["x"] == 1


def test_secret_keys_and_registered_secret_values_never_reach_the_output(stream, monkeypatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    obs_logging.configure("info", "json", stream)
    obs_logging.register_secret("TOPSECRETTOKEN123")
    log = structlog.get_logger("t")
    log.info("request", api_key="AKIA-KEY-VALUE", signature="abcdef0123", url="https://x/?sig=TOPSECRETTOKEN123")
    log.error("failed", error="auth header Bearer TOPSECRETTOKEN123 refused")
    text = stream.getvalue()
    for secret in ("AKIA-KEY-VALUE", "abcdef0123", "TOPSECRETTOKEN123"):
        assert secret not in text
    assert text.count("<redacted>") == 4


def test_level_changes_at_run_time(stream, monkeypatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    obs_logging.configure("warning", "json", stream)
    log = structlog.get_logger("t")
    log.info("hidden")
    obs_logging.set_level("debug")
    log.debug("shown")
    events = [orjson.loads(ln)["event"] for ln in lines(stream)]
    assert events == ["shown"]


def test_venue_credentials_are_scrubbed_from_logs_once_read(stream, monkeypatch) -> None:
    from nautilus_hmm.core.secrets import venue_credentials

    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_KEY", "vmPUZE6mv9SD5VNHk4HlWFsOr6aK")
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_SECRET", "NhqPtmdSJYdKjVHjA7PZj4Mge3R5")
    obs_logging.configure("info", "json", stream)
    key, secret = venue_credentials("binance")
    structlog.get_logger("t").info("request_failed", url=f"https://x/api?apiKey={key}", body=f"secret={secret}")
    text = stream.getvalue()
    assert key not in text and secret not in text


# ---------------------------------------------------------------- line format

_TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z"


def test_console_lines_lead_with_the_time(stream, monkeypatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    obs_logging.configure("info", "console", stream)
    structlog.get_logger("t").info("order_filled", qty="0.1")
    (line,) = lines(stream)
    assert re.match(rf"{_TS} \[info\s*\] order_filled qty=0.1$", line), line


def test_json_lines_carry_the_event_first_then_time_and_level(stream, monkeypatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    obs_logging.configure("info", "json", stream)
    structlog.get_logger("t").warning("risk_denied", a=1, z=2)
    (line,) = lines(stream)
    assert list(orjson.loads(line)) == ["event", "ts", "level", "a", "z"]
    assert line.startswith('{"event":"risk_denied","ts":"')


def test_under_journald_json_lines_keep_the_priority_then_the_event_first(stream, monkeypatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    obs_logging.configure("info", "auto", stream)
    structlog.get_logger("t").error("boom", a=1)
    (line,) = lines(stream)
    assert line.startswith('<3>{"event":"boom","ts":"')
    assert list(orjson.loads(line[3:])) == ["event", "ts", "level", "a"]


def test_under_journald_console_lines_keep_the_priority_then_the_time(stream, monkeypatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    obs_logging.configure("info", "console", stream)
    structlog.get_logger("t").warning("breaker_state_changed", venue="sim")
    (line,) = lines(stream)
    assert re.match(rf"<4>{_TS} \[warning\s*\] breaker_state_changed venue=sim$", line), line


def test_under_journald_every_line_of_a_console_traceback_keeps_the_priority(stream, monkeypatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    obs_logging.configure("info", "console", stream)
    try:
        raise ValueError("bad value")
    except ValueError:
        structlog.get_logger("t").exception("handler_failed")
    out = lines(stream)
    assert len(out) > 2 and all(ln.startswith("<3>") for ln in out), out
    assert out[-1] == "<3>ValueError: bad value"


def test_json_exception_stays_on_one_line_with_the_event_first(stream, monkeypatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    obs_logging.configure("info", "json", stream)
    try:
        raise ValueError("bad value")
    except ValueError:
        structlog.get_logger("t").exception("handler_failed")
    (line,) = lines(stream)
    record = orjson.loads(line[3:])
    assert list(record)[:3] == ["event", "ts", "level"] and "ValueError: bad value" in record["exception"]


def test_the_settings_in_force_are_what_a_worker_process_configures_with(stream, monkeypatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    obs_logging.configure("warning", "json", stream)
    assert obs_logging.settings() == {"level": "warning", "fmt": "json"}
    obs_logging.set_level("debug")
    assert obs_logging.settings() == {"level": "debug", "fmt": "json"}


def test_a_secret_key_is_redacted_every_time_whatever_its_case_and_the_key_cache(stream, monkeypatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setattr(obs_logging, "_SECRET_KEY_CACHE", {})
    monkeypatch.setattr(obs_logging, "_SECRET_KEY_CACHE_MAX", 2)  # full after two keys
    obs_logging.configure("info", "json", stream)
    log = structlog.get_logger("t")
    for _ in range(3):  # first use classifies, later uses hit the cache (or, once full, classify again)
        log.info("req", API_Key="K-1", x_Token="K-2", Passphrase="K-3", plain="visible")
    out = [orjson.loads(ln) for ln in lines(stream)]
    assert all((r["API_Key"], r["x_Token"], r["Passphrase"], r["plain"]) ==
               ("<redacted>", "<redacted>", "<redacted>", "visible") for r in out) and len(out) == 3
    assert len(obs_logging._SECRET_KEY_CACHE) == 2


def test_enabled_follows_the_level_in_force(stream) -> None:
    obs_logging.set_level("info")
    assert obs_logging.enabled("info") and obs_logging.enabled("error") and not obs_logging.enabled("debug")
    obs_logging.set_level("debug")
    assert obs_logging.enabled("debug")
