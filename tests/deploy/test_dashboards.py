"""deploy/grafana: three provisioned dashboards with stable uids, every panel on the
Prometheus variable, panels on the 24-column grid without overlaps, and provisioning files
that point where deploy/README.md copies the JSON; the example prometheus.yml passes promtool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.promql import DASHBOARDS, DEPLOY, RULES, promtool

UIDS = {"nautilus-hmm-overview", "nautilus-hmm-venue", "nautilus-hmm-strategies"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def boards() -> dict[str, dict[str, Any]]:
    """Dashboard JSON by file name."""
    return {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


def test_the_three_dashboards_have_their_stable_uids_and_file_names() -> None:
    by_file = boards()
    assert {d["uid"] for d in by_file.values()} == UIDS
    for name, d in by_file.items():
        assert name == f"{d['uid']}.json"
        assert d["title"].startswith("nautilus-hmm / ")
        assert d.get("id") is None  # a provisioned dashboard carries no database id


def test_every_panel_queries_through_the_prometheus_variable() -> None:
    for name, d in boards().items():
        [ds_var] = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
        assert ds_var["name"] == "datasource" and ds_var["query"] == "prometheus", name
        for panel in d["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == DATASOURCE, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE and target["expr"].strip(), (name, panel["title"])


def test_panels_have_unique_ids_and_do_not_overlap_on_the_grid() -> None:
    for name, d in boards().items():
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: dict[tuple[int, int], str] = {}
        for p in d["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: {p['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = p["title"]


def test_dashboard_provisioning_points_at_a_folder_of_the_json_files() -> None:
    doc = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "nautilus-hmm.yml").read_text())
    [provider] = doc["providers"]
    assert doc["apiVersion"] == 1 and provider["type"] == "file"
    assert Path(provider["options"]["path"]).is_absolute()
    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert [d["type"] for d in ds["datasources"]] == ["prometheus"]


def test_the_example_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    # The example names the rules where a Debian install keeps them; checked against the repo's copy.
    doc = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert [j["job_name"] for j in doc["scrape_configs"]] == ["nautilus-hmm"]
    doc["rule_files"] = [str(RULES)]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(doc))
    proc = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def grafana_exprs() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and annotation, Grafana variables substituted."""
    out = []
    for name, d in boards().items():
        exprs = [(f"{name}: {p['title']}", t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
        exprs += [(f"{name}: annotation {a['name']}", a["expr"]) for a in d["annotations"]["list"] if "expr" in a]
        for where, expr in exprs:
            expr = expr.replace("$__rate_interval", "5m")
            out.append((where, re.sub(r"\$\{?\w+\}?", ".*", expr)))
    return out


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses each query as the expression of a recording rule.
    exprs = grafana_exprs()
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)]}]}
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout
