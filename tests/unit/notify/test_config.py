"""[notify] parsing and the channel URL checks (URLs from the environment, never the TOML)."""

from __future__ import annotations

import pytest
import structlog

from nautilus_hmm.config.loader import ConfigError, parse
from nautilus_hmm.notify.channels import build_transports, channel_urls, scrub, url_parts
from nautilus_hmm.notify.config import NotifyConfig, channel_credential, channel_env_var


def cfg(**kw: object) -> NotifyConfig:
    base: dict[str, object] = {"enabled": True, "channels": {"ops": {"rate_per_min": 5}}, "routes": {"fills": ["ops"]}}
    base.update(kw)
    return parse(NotifyConfig, base)  # type: ignore[no-any-return]


def errors(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(NotifyConfig, data)
    return info.value.errors


def test_routes_and_channel_limits_parse() -> None:
    c = cfg()
    assert c.channels["ops"].rate_per_min == 5.0 and c.routes == {"fills": ("ops",)}


def test_a_route_to_an_undeclared_channel_names_the_route() -> None:
    [err] = errors({"channels": {"ops": {}}, "routes": {"fills": ["ops", "pager"]}})
    assert err.startswith('routes.fills[1] = "pager": no such channel')


def test_an_unknown_event_class_is_an_error_listing_the_known_ones() -> None:
    [err] = errors({"channels": {"ops": {}}, "routes": {"fill": ["ops"]}})
    assert err.startswith("routes.fill = [\"ops\"]: unknown event class") and "fills" in err


def test_a_url_in_the_toml_is_an_unknown_key_and_a_secret_word_is_refused() -> None:
    [err] = errors({"channels": {"ops": {"url": "json://x"}}})
    assert err.startswith('channels.ops.url = "json://x": unknown key')
    [err] = errors({"channels": {"ops": {"token": "abc"}}})
    assert "secrets must not be written in the config file" in err and "abc" not in err


def test_a_channel_name_must_fit_an_environment_variable() -> None:
    [err] = errors({"channels": {"Ops-1": {}}})
    assert err.startswith("channels.Ops-1")


def test_enabled_without_channels_is_an_error() -> None:
    [err] = errors({"enabled": True})
    assert err.startswith("enabled = true: no channel declared")


def test_the_daily_summary_time_is_hh_mm() -> None:
    [err] = errors({"daily_summary_at": "25:00"})
    assert err.startswith('daily_summary_at = "25:00": expected HH:MM')


def test_secret_names_follow_the_channel_name() -> None:
    assert channel_env_var("ops_team") == "NAUTILUS_HMM_NOTIFY_OPS_TEAM_URL"
    assert channel_credential("ops_team") == "notify-ops-team-url"


def test_an_unknown_url_scheme_fails_naming_the_field_and_the_variable_not_the_url() -> None:
    secret = "foo://user:hunter22@example.org/abc"
    urls, problems = channel_urls(cfg(), {"NAUTILUS_HMM_NOTIFY_OPS_URL": secret})
    assert urls == {}
    [p] = problems
    assert p.startswith("notify.channels.ops: $NAUTILUS_HMM_NOTIFY_OPS_URL")
    assert "unknown URL scheme 'foo'" in p and "hunter22" not in p


def test_a_missing_url_names_both_places_it_is_read_from() -> None:
    with pytest.raises(ValueError) as info:
        build_transports(cfg(), {})
    assert str(info.value) == ("notify.channels.ops: no URL: set $NAUTILUS_HMM_NOTIFY_OPS_URL or the systemd "
                               "credential notify-ops-url")


def test_a_known_scheme_it_cannot_parse_is_refused_without_logging_the_url() -> None:
    with structlog.testing.capture_logs() as logs:
        _, [p] = channel_urls(cfg(), {"NAUTILUS_HMM_NOTIFY_OPS_URL": "tgram://s3cretbot"})
    assert "not a valid tgram:// URL" in p and "s3cretbot" not in p and logs == []


def test_a_url_from_a_credential_file_is_read_and_registered_for_redaction(tmp_path, monkeypatch) -> None:
    from nautilus_hmm.core.secrets import REDACTED_VALUES

    url = "json://127.0.0.1:9/hook-credential"
    (tmp_path / "notify-ops-url").write_text(url + "\n")
    monkeypatch.delenv("NAUTILUS_HMM_NOTIFY_OPS_URL", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    urls, problems = channel_urls(cfg())
    assert problems == [] and urls == {"ops": url} and url in REDACTED_VALUES


def test_scrub_removes_every_part_of_the_url() -> None:
    url = "jsons://bob:pa55word@hooks.example.org:8443/T0KEN123/x?key=abcdef"
    text = "Failed to send to hooks.example.org (T0KEN123) as bob with pa55word abcdef"
    out = scrub(text, url_parts(url))
    for part in ("hooks.example.org", "T0KEN123", "pa55word", "abcdef"):
        assert part not in out
