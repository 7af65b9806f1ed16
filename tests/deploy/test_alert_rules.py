"""deploy/prometheus/rules.yml: promtool accepts it, its unit tests pass, every alert has a
severity, the three annotations and a runbook section in docs/OPERATIONS.md, and a firing
and a quiet case in rules_test.yml or rules_test_long.yml."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.deploy.promql import OPERATIONS, RULES, RULES_TESTS, alert_rules, promtool

SEVERITIES = {"critical", "warning", "info"}
RUNBOOK_PREFIX = "docs/OPERATIONS.md#"


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub makes of a markdown file's headings (lowercase, punctuation dropped, spaces to -)."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_promtool_checks_the_rules() -> None:
    proc = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    proc = subprocess.run([promtool(), "test", "rules", *map(str, RULES_TESTS)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_there_are_at_least_twelve_alerts_with_unique_names() -> None:
    names = [r["alert"] for r in alert_rules()]
    assert len(names) >= 12
    assert len(names) == len(set(names))


def test_every_alert_has_a_severity_and_the_three_annotations() -> None:
    for rule in alert_rules():
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key), f"{rule['alert']}: annotation {key} missing"
        assert annotations["runbook_url"].startswith(RUNBOOK_PREFIX), rule["alert"]


def test_every_runbook_anchor_is_a_heading_of_operations_md() -> None:
    anchors = github_anchors(OPERATIONS.read_text())
    missing = [r["annotations"]["runbook_url"] for r in alert_rules()
               if r["annotations"]["runbook_url"].removeprefix(RUNBOOK_PREFIX) not in anchors]
    assert not missing


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULES_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["rules.yml"], path
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - firing == set(), "alerts without a firing case"
    assert names - quiet == set(), "alerts without a quiet case"


def test_the_anchor_rule_matches_githubs_for_a_heading_with_punctuation() -> None:
    assert github_anchors("## Money safety, in one place\n### NautilusHmmDown") == {
        "money-safety-in-one-place", "nautilushmmdown"}
