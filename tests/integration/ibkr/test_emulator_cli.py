"""`nautilus-hmm emulator ibkr`: a process that ib_async connects to and trades on, whose faults
are set over its control port, and that stops cleanly on SIGTERM; bad arguments exit with a
message naming them."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys

import aiohttp
import pytest

from nautilus_hmm.venues.ibkr.emulator.cli import main
from tests.integration.ibkr.emulator_harness import until

ib_async = pytest.importorskip("ib_async")
from ib_async import IB, MarketOrder, Stock  # noqa: E402

START_TIMEOUT_S = 60.0  # a cold interpreter on a loaded 2-core machine


async def test_the_command_serves_ib_async_takes_faults_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nautilus_hmm", "emulator", "ibkr", "--port", "0", "--control-port", "0",
        "--no-subscription", "EUR.USD", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)).decode()
        m = re.search(r"api 127\.0\.0\.1:(\d+) account DU1234567 control (http://\S+)", line)
        assert m, line
        port, control = int(m.group(1)), m.group(2)
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=9, timeout=10)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(control, json={"withhold_order_status": 1}) as r:
                    assert r.status == 200 and (await r.json())["withhold_order_status"] == 1
                async with http.post(control, json={"withhold_order_status": "x"}) as r:
                    assert r.status == 400 and "withhold_order_status" in (await r.json())["error"]
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            trade = ib.placeOrder(aapl, MarketOrder("BUY", 1, orderRef="cli"))
            # its first orderStatus is withheld; reqOpenOrders (answered after the order, on the same
            # socket) re-sends it. On the real clock the market may be closed (held) or open (filled).
            await ib.reqOpenOrdersAsync()
            await until(lambda: trade.orderStatus.status in ("PreSubmitted", "Submitted", "Filled"), 10,
                        "the order's state")
        finally:
            ib.disconnect()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_unknown_no_subscription_symbol_exits_2_naming_it(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--port", "0", "--no-subscription", "XYZ"]) == 2
    err = capsys.readouterr().err
    assert "'XYZ'" in err and "EUR.USD" in err


def test_port_out_of_range_is_a_usage_error(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["--port", "70000"])
    assert exc.value.code == 2
    assert "'70000'" in capsys.readouterr().err


def test_port_in_use_exits_1_naming_the_address(capsys) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


def test_bad_daily_restart_time_exits_2_naming_it(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--port", "0", "--daily-restart-at", "25:00"]) == 2
    assert "'25:00'" in capsys.readouterr().err
