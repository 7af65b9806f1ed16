"""Shared helpers of the deploy/ tests: promtool, the rules, and metric names in PromQL."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
# promtool unit tests: rules_test.yml evaluates every minute, rules_test_long.yml (alerts over days) every 5.
RULES_TESTS = (DEPLOY / "prometheus" / "rules_test.yml", DEPLOY / "prometheus" / "rules_test_long.yml")
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))


def promtool() -> str:
    """The promtool binary; skips (fails under CI's NAUTILUS_HMM_REQUIRE_PROMTOOL) when absent."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("NAUTILUS_HMM_REQUIRE_PROMTOOL"):
            pytest.fail("promtool is required (install Debian's prometheus package)")
        pytest.skip("promtool not installed (Debian's prometheus package provides it)")
    return path


def alert_rules(path: Path = RULES) -> list[dict[str, Any]]:
    """Every alerting rule of a rules file."""
    doc = yaml.safe_load(path.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


# PromQL words that look like identifiers but are not metric names.
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "inf", "nan", "le",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_LABELS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_TEMPLATE_VARS = re.compile(r"\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?|\$__\w+")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels and grouping removed)."""
    s = _TEMPLATE_VARS.sub("1m", expr)
    s = _STRING.sub('""', s)
    s = _LABELS.sub("", s)
    s = _GROUPING.sub("", s)
    s = _RANGE.sub("", s)
    names = set()
    for m in _IDENT.finditer(s):
        word = m.group(1)
        if word.lower() in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]?", word):
            continue
        names.add(word)
    return names


def exported_name(series_name: str, family_names: set[str]) -> bool:
    """Whether a series name belongs to a family of the scrape (histogram _bucket/_sum/_count)."""
    if series_name in family_names:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if series_name.endswith(suffix) and series_name[: -len(suffix)] in family_names:
            return True
    return False
