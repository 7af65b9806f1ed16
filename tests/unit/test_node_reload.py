"""Node reload wiring: SIGHUP and /admin/reload are all-or-nothing, never raise, and the
reload timestamp metric follows the active config."""

from __future__ import annotations

from structlog.testing import capture_logs

from tests.nodeharness import running_node, write_config


def reload_timestamp_s(node) -> float | None:
    return node.metrics.registry.get_sample_value("config_last_reload_timestamp_seconds")


async def test_sighup_with_a_whole_number_above_int64_applies_nothing(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        old_hash = node.config.hash
        write_config(tmp_path, '[log]\nlevel = "debug"\n[risk]\norder_burst = 18446744073709551616\n'
                               "max_order_notional_usd = 123.0\n")
        node._on_sighup()  # must not raise
        assert node.config.hash == old_hash
        assert node.status()["config"]["hash"] == old_hash
        assert node.stack.gate.config.max_order_notional_usd == 50_000.0  # the live change was not applied
        assert node.config.current.log.level == "info"


async def test_sighup_handler_logs_an_unexpected_error_instead_of_raising(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        def broken(source: str) -> None:
            raise RuntimeError("notifier socket gone")

        monkeypatch.setattr(node, "reload", broken)
        with capture_logs() as logs:
            node._on_sighup()
        assert any(e["event"] == "config_reload_failed" and e["source"] == "SIGHUP" for e in logs)


async def test_admin_reload_whose_applier_fails_rolls_back_and_answers_400(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        old_hash = node.config.hash

        def broken(cfg) -> None:
            raise ValueError("cannot apply")

        node.config.add_applier("broken", broken)
        write_config(tmp_path, "[risk]\nmax_order_notional_usd = 123.0\n")
        status, body = await node._admin_reload({})
        assert status == 400 and body["result"] == "failed" and body["config_hash"] == old_hash
        assert node.stack.gate.config.max_order_notional_usd == 50_000.0  # rolled back
        assert node.config.current.risk.max_order_notional_usd == 50_000.0


async def test_reload_timestamp_metric_is_set_at_start_and_on_every_applied_reload(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        assert reload_timestamp_s(node) == node.clock.time_ns() / 1e9
        await node.clock.advance_settle(30.0)
        write_config(tmp_path, "[risk]\nmax_order_notional_usd = 123.0\n")
        assert node.reload("test").result == "applied"
        assert reload_timestamp_s(node) == node.clock.time_ns() / 1e9
        before = reload_timestamp_s(node)
        await node.clock.advance_settle(30.0)
        write_config(tmp_path, "[risk]\nmax_order_notional_usd = -1\n")
        assert node.reload("test").result == "invalid"
        assert reload_timestamp_s(node) == before  # a rejected reload leaves it alone


async def test_reload_outcomes_are_counted_under_their_own_result(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        def count(result: str) -> float:
            return node.metrics.registry.get_sample_value("config_reloads_total", {"result": result}) or 0.0

        node.config.add_applier("broken", lambda cfg: (_ for _ in ()).throw(ValueError("cannot apply")))
        write_config(tmp_path, "[risk]\nmax_order_notional_usd = 123.0\n")
        assert node.reload("test").result == "failed"
        write_config(tmp_path, "[risk]\nmax_order_notional_usd = -1\n")
        assert node.reload("test").result == "invalid"
        assert (count("failed"), count("invalid"), count("restart_required")) == (1.0, 1.0, 0.0)
