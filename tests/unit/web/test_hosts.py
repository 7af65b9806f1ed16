"""The Host check's rules (web.server.HostPolicy), without a server."""

from __future__ import annotations

import pytest

from nautilus_hmm.web.server import HostPolicy, host_name


@pytest.mark.parametrize(("header", "name"), [("Example.org:8080", "example.org"), ("[::1]:80", "::1"),
                                              ("localhost.", "localhost"), ("10.0.0.5", "10.0.0.5"),
                                              ("::1", "::1")])
def test_host_name_drops_the_port_brackets_case_and_trailing_dot(header: str, name: str) -> None:
    assert host_name(header) == name


def test_a_loopback_bind_answers_loopback_names_and_no_other() -> None:
    p = HostPolicy("127.0.0.1", hostname="vps1.example.net")
    for ok in ("127.0.0.1:8080", "localhost", "[::1]:8080", "127.0.0.2", "vps1.example.net", "VPS1:8080", None):
        assert p.allows(ok), ok
    for bad in ("evil.example:8080", "localhost.evil.example", "10.0.0.5", "", "127.0.0.1.nip.io"):
        assert not p.allows(bad), bad


def test_a_wildcard_bind_answers_ip_literals_but_not_foreign_names() -> None:
    p = HostPolicy("0.0.0.0", hostname="vps1")
    assert p.allows("203.0.113.7:8080") and p.allows("[2001:db8::1]:8080") and p.allows("localhost")
    assert not p.allows("evil.example")


def test_a_specific_address_bind_answers_that_address_and_the_configured_names() -> None:
    p = HostPolicy("10.0.0.5", extra=lambda: ("Dash.Example.org",), hostname="vps1")
    assert p.allows("10.0.0.5:8080") and p.allows("dash.example.org:443")
    assert not p.allows("10.0.0.6") and not p.allows("localhost") and not p.allows("other.example.org")
