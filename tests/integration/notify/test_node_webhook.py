"""A running node sends its notifications to a webhook on loopback: the start, a halt through
the admin API; its metrics count them."""

from __future__ import annotations

from typing import Any

from nautilus_hmm.core.clock import ManualClock
from tests.nodeharness import auth, client, running_node

from .test_webhook import Receiver, receiver  # noqa: F401 (the fixture)

NOTIFY = ('[notify]\nenabled = true\n[notify.channels.ops]\n'
          '[notify.routes]\ndaemon = ["ops"]\ntrading_state = ["ops"]\n')


async def test_a_node_notifies_its_start_and_a_halt(tmp_path, monkeypatch, receiver: Receiver) -> None:  # noqa: F811
    monkeypatch.setenv("NAUTILUS_HMM_NOTIFY_OPS_URL", receiver.url("ops"))
    async with running_node(tmp_path, monkeypatch, NOTIFY) as (node, base):
        clock = node.clock
        assert isinstance(clock, ManualClock)
        async with client() as http:
            r = await http.post(f"{base}/admin/kill", json={"reason": "test halt"}, headers=auth())
            assert r.status == 200
            await clock.advance_settle(1.0)
            await receiver.until(lambda: any("test halt" in m for m in receiver.messages("ops")))
            messages = receiver.messages("ops")
            assert any(m.startswith("daemon nautilus-hmm started") for m in messages)
            body: dict[str, Any] = await (await http.get(f"{base}/status")).json()
            assert "notify" in body["components"]
        await clock.advance_settle(0.1)
        metrics = node.metrics.render().decode()
        assert 'notifications_sent_total{channel="ops"}' in metrics
