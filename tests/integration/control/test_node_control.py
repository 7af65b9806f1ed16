"""The node's control plane wiring: a model service per HMM strategy with its own registry
scope, the plane behind the web port, the journal recording the control events."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from nautilus_hmm.config import load_config
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.node import Node
from nautilus_hmm.obs.systemd import Notifier
from tests.nodeharness import TOKEN, client, running_node

TWO_HMM = """
[[strategies]]
id = "regime_a"
kind = "hmm"
instruments = ["sim:BTCUSDT"]
[[strategies]]
id = "regime_b"
kind = "hmm"
instruments = ["sim:ETHUSDT"]
[[strategies]]
id = "trend"
kind = "sma_cross"
instruments = ["sim:BTCUSDT"]
[hmm]
history_from_venue = false
"""


def test_each_hmm_strategy_gets_its_own_model_service_and_registry(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(f'[node]\nstate_dir = "{tmp_path / "state"}"\n[http]\nport = 0\n' + TWO_HMM)
    node = Node(load_config(str(path)), path, clock=ManualClock(), notifier=Notifier(""))
    try:
        assert list(node.model_services) == ["regime_a", "regime_b"]
        roots = {sid: svc.registry.root for sid, svc in node.model_services.items()}
        assert roots == {"regime_a": tmp_path / "state" / "models" / "regime_a",
                         "regime_b": tmp_path / "state" / "models" / "regime_b"}
        names = [c.name for c in node.supervisor.components]
        assert {"models:regime_a", "models:regime_b", "allocator", "governance"} <= set(names)
        assert names.index("allocator") < names.index("trading") < names.index("governance")
        assert node.models is node.model_services["regime_a"]  # the model routes serve the first
        assert node.plane.governance is not None and node.plane.governance.models is node.model_services
        text = generate_latest(node.metrics.registry).decode()  # one family per name, labelled per strategy
        assert 'hmm_training_window_bars{strategy="regime_a"}' in text
        assert 'hmm_training_window_bars{strategy="regime_b"}' in text
    finally:
        node.stack.journal.close()


async def test_get_strategies_on_a_running_node_shows_every_strategy(tmp_path: Path, monkeypatch) -> None:
    extra = ('[[strategies]]\nid = "trend"\nkind = "sma_cross"\n'
             '[[strategies]]\nid = "break"\nkind = "breakout"\ninstruments = ["sim:BTCUSDT", "sim:ETHUSDT"]\n')
    async with running_node(tmp_path, monkeypatch, extra) as (_node, url):
        async with client() as s:
            async with s.get(f"{url}/strategies") as resp:
                rows = (await resp.json())["strategies"]
            async with s.get(f"{url}/status") as resp:
                status = await resp.json()
            async with s.get(f"{url}/metrics") as resp:
                metrics = await resp.text()
        assert [(r["strategy_id"], r["kind"], r["state"]) for r in rows] == [
            ("trend", "sma_cross", "active"), ("break", "breakout", "active")]
        assert sum(r["share"] for r in rows) == 1.0
        assert set(status["strategies"]) == {"trend", "break"} and "house" in status
        assert 'strategy_allocation_ratio{strategy="trend"}' in metrics
        assert "governance_decisions" in metrics or "governance" in metrics


async def test_control_events_reach_the_journal(tmp_path: Path, monkeypatch) -> None:
    extra = '[[strategies]]\nid = "trend"\nkind = "sma_cross"\n[[strategies]]\nid = "break"\nkind = "breakout"\n'
    async with running_node(tmp_path, monkeypatch, extra) as (node, _url):
        node.plane.set_strategy_state("break", "reduce", "test", "admin")
        await node.stack.journal.flush()
        kinds = {e.kind for e in node.stack.journal.events()}
    assert {"StrategyStateChanged", "AllocationChanged"} <= kinds


async def test_model_routes_pick_an_hmm_strategy_by_id(tmp_path: Path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch, TWO_HMM) as (_node, url), client() as s:
        async with s.get(f"{url}/models?strategy=regime_b") as resp:
            assert resp.status == 200 and (await resp.json())["models"] == []
        async with s.get(f"{url}/regimes") as resp:  # the first hmm strategy
            assert resp.status == 200
        async with s.get(f"{url}/models?strategy=nope") as resp:
            body = await resp.json()
            assert resp.status == 404 and body["known"] == ["regime_a", "regime_b"]
        async with s.post(f"{url}/admin/retrain", json={"strategy": "nope"},
                          headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 404
