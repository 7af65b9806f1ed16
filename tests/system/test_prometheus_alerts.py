"""A real Prometheus (Debian's `prometheus`) on loopback scrapes a running daemon with the
shipped alert rules, and fires NautilusHmmTradingHalted after trading is halted through the
admin API. The rules are copied with every `for:` set to 0s, scrape and evaluation run every
second, and every wait polls with a deadline."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import RULES
from tests.nodeharness import TOKEN
from tests.system.processes import DEADLINE_S, free_port, http_json, start_daemon, wait_for

CONFIG = """
[strategy]
kind = "sma_cross"
[node]
state_dir = "{state}"
[http]
port = {port}
"""


def prometheus_binary() -> str:
    """The prometheus server binary; skips (fails under CI's NAUTILUS_HMM_REQUIRE_PROMTOOL) when absent."""
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("NAUTILUS_HMM_REQUIRE_PROMTOOL"):
            pytest.fail("prometheus is required (install Debian's prometheus package)")
        pytest.skip("prometheus not installed (Debian's prometheus package)")
    return path


def rules_without_for(src: Path, dst: Path) -> None:
    """A copy of the rules whose alerts fire on their first true evaluation."""
    doc = yaml.safe_load(src.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = "0s"
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it does not exit within the deadline."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A running daemon (sim venue, sma_cross); yields its base URL and port."""
    port = free_port()
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG.format(state=tmp_path / "state", port=port))
    proc = start_daemon(cfg, tmp_path / "daemon.log", TOKEN)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "the daemon ready")
        yield base, port
    finally:
        stop(proc)


@pytest.fixture
def prometheus(tmp_path: Path, daemon: tuple[str, int]) -> Iterator[str]:
    """Prometheus scraping the daemon every second with the rules (for: 0s); yields its base URL."""
    binary = prometheus_binary()
    _, daemon_port = daemon
    rules = tmp_path / "rules.yml"
    rules_without_for(RULES, rules)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "nautilus-hmm",
                            "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}]}],
    }))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("ab")
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or http_status(base + "/-/ready") == 200, "prometheus ready")
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        yield base
    finally:
        stop(proc)
        log.close()


def http_status(url: str) -> int:
    """The status of a GET whose body is not JSON (Prometheus's /-/ready)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def query(prom: str, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query."""
    status, body = http_json(prom + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert status == 200, body
    return body["data"]["result"]


def rules_evaluated_after(prom: str, t: datetime) -> bool:
    """Whether every alerting rule was evaluated, without error, after `t`."""
    status, body = http_json(prom + "/api/v1/rules?type=alert")
    assert status == 200, body
    rules = [rule for group in body["data"]["groups"] for rule in group["rules"]]
    assert rules, body
    for rule in rules:
        assert rule["health"] != "err", rule
    return all(datetime.fromisoformat(rule["lastEvaluation"]) > t for rule in rules)


def alerts(prom: str, name: str) -> list[dict[str, Any]]:
    """Active alerts (pending or firing) of one name."""
    status, body = http_json(prom + "/api/v1/alerts")
    assert status == 200, body
    return [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == name]


def test_halting_trading_fires_the_trading_halted_alert_in_prometheus(daemon, prometheus) -> None:
    base, _ = daemon
    # Quiet case: the rules evaluated after a scrape that saw trading ACTIVE, and are inactive.
    wait_for(lambda: query(prometheus, 'trading_state{job="nautilus-hmm", state="ACTIVE"} == 1'),
             "prometheus sees trading ACTIVE")
    seen_active = datetime.now(UTC)
    wait_for(lambda: rules_evaluated_after(prometheus, seen_active), "a rule evaluation after the ACTIVE scrape")
    assert alerts(prometheus, "NautilusHmmTradingHalted") == []
    # No rule misfires on a healthy daemon (loop lag may: the machine is shared and busy).
    status, body = http_json(prometheus + "/api/v1/alerts")
    active = {a["labels"]["alertname"] for a in body["data"]["alerts"]}
    assert active <= {"NautilusHmmEventLoopLag"}, body["data"]["alerts"]

    status, body = http_json(base + "/admin/kill", {"reason": "prometheus alert test"},
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and body["trading_state"] == "HALTED", body

    def firing() -> list[dict[str, Any]]:
        return [a for a in alerts(prometheus, "NautilusHmmTradingHalted") if a["state"] == "firing"]

    [alert] = wait_for(firing, "NautilusHmmTradingHalted firing in prometheus", timeout_s=30.0, poll_s=0.2)
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["job"] == "nautilus-hmm"
    assert alert["annotations"]["runbook_url"] == "docs/OPERATIONS.md#nautilushmmtradinghalted"
