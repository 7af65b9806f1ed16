"""Every metric an alert rule or a dashboard queries is exported by a running node.

The node runs the HMM strategy with a production model (so the model service's families
are there) on the sim venue; families a scrape-time collector emits without samples count
(their `# TYPE` line is in the scrape). Names that only a deployment this node cannot be
(notifications configured, the control plane wired) or Prometheus itself provide are in
ALLOWED with the reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from nautilus_hmm.hmm.registry import ModelRegistry
from tests.deploy.promql import DASHBOARDS, alert_rules, exported_name, metric_names
from tests.nodeharness import client, running_node
from tests.unit.hmm.kit import decisive_model

ALLOWED = {
    "up": "Prometheus's own series per scrape target",
    "notifications_failed_total": "added by the notification channels (issue 11.1); absent until then",
    # The control plane's collectors (issue 10): exported once node.py registers the router's,
    # the allocator's and governance's collect_metrics.
    "strategy_equity_usd": "control plane (issue 10)",
    "strategy_pnl_usd": "control plane (issue 10)",
    "strategy_capital_usd": "control plane (issue 10)",
    "strategy_position": "control plane (issue 10)",
    "strategy_target_qty": "control plane (issue 10)",
    "strategy_denials_total": "control plane (issue 10)",
    "strategy_fills_total": "control plane (issue 10)",
    "strategy_allocation_ratio": "control plane (issue 10)",
    "allocator_rebalances_total": "control plane (issue 10)",
    "allocator_override_active": "control plane (issue 10)",
    "governance_decisions_total": "control plane (issue 10)",
}


def queried_names() -> dict[str, set[str]]:
    """Metric name -> where it is queried (rule alert names, dashboard panel titles)."""
    where: dict[str, set[str]] = {}

    def add(expr: str, place: str) -> None:
        for name in metric_names(expr):
            where.setdefault(name, set()).add(place)

    for rule in alert_rules():
        add(rule["expr"], f"rule {rule['alert']}")
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        for panel in d["panels"]:
            for target in panel.get("targets", []):
                add(target["expr"], f"{path.name}: {panel['title']}")
        for var in d["templating"]["list"]:
            if var["type"] == "query":
                q = var["query"]["query"]
                add(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q), f"{path.name}: variable {var['name']}")
        for ann in d["annotations"]["list"]:
            if "expr" in ann:
                add(ann["expr"], f"{path.name}: annotation {ann['name']}")
    return where


async def test_every_queried_metric_is_in_a_live_scrape(tmp_path: Path, monkeypatch) -> None:
    registry = ModelRegistry(tmp_path / "state" / "models")
    registry.promote(registry.add(decisive_model()))
    async with (running_node(tmp_path, monkeypatch, '[strategy]\nkind = "hmm"\n') as (_node, url), client() as s,
                s.get(url + "/metrics") as r):
        text = await r.text()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    where = queried_names()
    assert len(where) > 40  # the extractor found the queries
    missing = {n: sorted(p) for n, p in where.items() if not exported_name(n, families) and n not in ALLOWED}
    assert not missing, missing


def test_the_allow_list_names_only_metrics_that_are_queried() -> None:
    assert set(ALLOWED) <= set(queried_names())
