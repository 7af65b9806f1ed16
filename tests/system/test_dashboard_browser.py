"""The dashboard in a real headless browser (Debian's chromium + chromedriver, through
selenium) against a paper-trading daemon started here: the page renders, a fill arrives
live over /events/public, a wrong token leaves it read-only, kill behind the token and a
confirmation halts trading, the positions table matches /positions, no script error or
CSP violation is logged, the page reconnects by itself across a daemon crash (SIGKILL) and
restart with the equity curve kept, and a screenshot is saved.

Every wait is on a condition (WebDriverWait / wait_for), never a fixed sleep. Skipped when
chromium or chromedriver is missing; CI sets NAUTILUS_HMM_REQUIRE_BROWSER=1 to fail instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nodeharness import TOKEN
from tests.system.processes import DEADLINE_S, free_port, http_json, start_daemon, wait_for

CHROMIUM = os.environ.get("NAUTILUS_HMM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NAUTILUS_HMM_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_S = 20.0

CONFIG = """
[node]
state_dir = "{state}"
[http]
port = {port}
[journal]
snapshot_interval_s = 1
[venues.sim]
symbols = ["BTCUSDT"]
[venues.sim.market]
tick_interval_s = 0.02
bar_interval_s = 1
initial_prices = {{ BTCUSDT = 60000.0 }}
[strategy]
kind = "sma_cross"
bar_interval_s = 1
[strategy.sma_cross]
fast = 1
slow = 2
quantity = "0.01"
[risk]
initial_state = "ACTIVE"
stale_data_s = 5.0
"""

HMM_CONFIG = """
[node]
state_dir = "{state}"
[http]
port = {port}
[venues.sim]
symbols = ["BTCUSDT"]
[strategy]
kind = "hmm"
"""


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() or shutil.which(p))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        if os.environ.get("NAUTILUS_HMM_REQUIRE_BROWSER"):
            pytest.fail(f"the browser test needs {', '.join(missing)} (Debian: apt-get install chromium chromium-driver)")
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install chromium chromium-driver)")


class Daemon:
    """A paper-trading daemon on a free loopback port, restartable on the same port and state."""

    def __init__(self, tmp_path: Path, config: str = CONFIG) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = tmp_path / "config.toml"
        self.config.write_text(config.format(state=tmp_path / "state", port=self.port))
        self.log = tmp_path / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def launch(self) -> None:
        self.proc = start_daemon(self.config, self.log, TOKEN)

    def wait_ready(self) -> None:
        wait_for(lambda: http_json(self.base + "/ready")[0] == 200, "daemon ready")

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A started Daemon; stopped afterwards."""
    d = Daemon(tmp_path)
    try:
        d.start()
        yield d
    finally:
        d.stop(signal.SIGKILL)  # its state is thrown away; no worker process to leave behind


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless chromium driven by chromedriver (no Selenium Manager: both paths are given),
    one for the module (it starts in ~1-2 s)."""
    _require_browser()
    tmp_path = tmp_path_factory.mktemp("chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,2000", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER,
                                                            log_output=str(tmp_path / "chromedriver.log")))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _table(driver, tbody_id: str, key_attr: str) -> dict[str, list[str]]:
    """Rows of a table body by their key attribute: {key: [cell texts]} (one script call, no stale elements)."""
    return driver.execute_script(
        "const out = {}; for (const tr of document.querySelectorAll(`#${arguments[0]} tr[${arguments[1]}]`))"
        " out[tr.getAttribute(arguments[1])] = [...tr.cells].map(td => td.textContent.trim()); return out;",
        tbody_id, key_attr)


def test_dashboard_renders_updates_live_and_kills_with_token(daemon: Daemon, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver, base = browser, daemon.base
    wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.05)
    text_of = lambda el_id: driver.find_element(By.ID, el_id).text  # noqa: E731

    # Renders read-only (no token anywhere) with the live stream connected.
    driver.get(base + "/")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    wait.until(lambda d: text_of("trading-state") == "ACTIVE")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "1")
    assert not driver.find_element(By.ID, "admin-controls").is_displayed()
    wait.until(lambda d: "USDT" in text_of("equity-value"))
    wait.until(lambda d: int(d.find_element(By.ID, "equity-chart").get_attribute("data-points") or 0) >= 1)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#venues-body tr[data-venue='sim']"))

    # A fill arrives over the public stream (not from the page's /fills read) and is the journal's fill.
    live = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#fills-body tr[data-source='live']"))
    trade_id = live[0].get_attribute("data-trade-id")
    journaled = wait_for(lambda: {f["trade_id"]: f for f in http_json(base + "/fills?limit=10000")[1]["fills"]
                                  if f["trade_id"] == trade_id}, f"fill {trade_id} in /fills")
    cells = _table(driver, "fills-body", "data-trade-id")[trade_id]
    assert cells[1] == journaled[trade_id]["instrument_id"] and cells[2] == journaled[trade_id]["side"]

    # A wrong token is refused by the daemon: still read-only.
    driver.find_element(By.ID, "token-input").send_keys("not-the-token")
    driver.find_element(By.ID, "token-save").click()
    wait.until(lambda d: "refused" in text_of("message"))
    assert not driver.find_element(By.ID, "admin-controls").is_displayed()

    # The right token shows the trading actions; cancelling the confirmation changes nothing.
    driver.find_element(By.ID, "token-input").send_keys(TOKEN)
    driver.find_element(By.ID, "token-save").click()
    wait.until(ec.visibility_of_element_located((By.ID, "btn-kill")))
    driver.find_element(By.ID, "btn-kill").click()
    wait.until(ec.visibility_of_element_located((By.ID, "confirm-dialog")))
    driver.find_element(By.ID, "confirm-cancel").click()
    wait.until(ec.invisibility_of_element_located((By.ID, "confirm-dialog")))
    assert http_json(base + "/status")[1]["trading_state"] == "ACTIVE"

    # Kill with confirmation halts trading, with the reason typed in the dialog.
    driver.find_element(By.ID, "btn-kill").click()
    wait.until(ec.visibility_of_element_located((By.ID, "confirm-dialog")))
    reason = driver.find_element(By.ID, "confirm-reason")
    reason.clear()
    reason.send_keys("browser test kill")
    driver.find_element(By.ID, "confirm-ok").click()
    wait.until(lambda d: text_of("trading-state") == "HALTED")
    status = http_json(base + "/status")[1]
    assert status["trading_state"] == "HALTED" and status["trading_state_reason"] == "browser test kill"

    # Halted, the books stand still: the positions table converges to /positions (and stays there).
    def positions_match(d) -> bool:
        api = {p["instrument_id"]: p for p in http_json(base + "/positions")[1]["positions"]}
        shown = _table(d, "positions-body", "data-instrument")
        return bool(api) and set(shown) == set(api) and all(
            shown[i][1:3] == [p["qty"], p["avg_px"]] and shown[i][5] == p["realized_pnl"] and shown[i][3] != "—"
            for i, p in api.items())

    wait.until(positions_match)

    # No script error and no CSP violation (failed loads, e.g. the 401 of the wrong token, are answers).
    severe = [e["message"] for e in driver.get_log("browser")
              if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]
    assert severe == []

    # The daemon is killed (SIGKILL) and restarted under the open page: the page notices,
    # reconnects by itself, and the equity curve keeps the journaled samples from before.
    wait_for(lambda: http_json(base + "/equity")[1]["samples"], "a journaled equity sample")
    before = http_json(base + "/equity")[1]["samples"]
    daemon.stop(signal.SIGKILL)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "0")
    daemon.start()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "1")
    wait.until(lambda d: int(d.find_element(By.ID, "equity-chart").get_attribute("data-samples") or 0) >= len(before))
    after = http_json(base + "/equity")[1]["samples"]
    assert after[:len(before)] == before

    shot = tmp_path / "dashboard.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"dashboard screenshot: {shot}")
    driver.get("about:blank")  # the page's stream closes: the daemon stops without waiting on it



@pytest.fixture(scope="module", autouse=True)
def hmm_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str]]:
    """A daemon running the hmm strategy with a promoted model, launched when the module
    starts (its start-up overlaps the first test); yields it and the model id."""
    _require_browser()
    from nautilus_hmm.hmm.registry import ModelRegistry
    from tests.unit.hmm.kit import decisive_model

    tmp = tmp_path_factory.mktemp("hmm-daemon")
    registry = ModelRegistry(tmp / "state" / "models")
    model_id = registry.add(decisive_model())
    registry.promote(model_id)
    daemon = Daemon(tmp, HMM_CONFIG)
    daemon.launch()
    try:
        yield daemon, model_id
    finally:
        daemon.stop()


def test_dashboard_shows_regime_posteriors_and_models_of_a_hmm_daemon(browser, hmm_daemon, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    daemon, model_id = hmm_daemon
    daemon.wait_ready()
    base = daemon.base
    # the sim venue's past warms the model up at start: posteriors are there within seconds
    def ready_regimes() -> dict | None:
        status, body = http_json(base + "/regimes")
        lane = ((body.get("instruments") or {}).get("sim:BTCUSDT") or {}) if status == 200 else {}
        return body if (lane.get("production") or {}).get("ready") else None

    regimes = wait_for(ready_regimes, "posteriors in /regimes")
    driver = browser
    driver.get(base + "/")
    wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.05)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#regimes-body .regime .posteriors div[data-label]"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#models-body tr[data-model='{model_id}']"))
    shown = driver.execute_script(
        "return [...document.querySelectorAll('#regimes-body .regime[data-instrument=\"sim:BTCUSDT\"] "
        ".posteriors div[data-label]')].map(e => e.getAttribute('data-label'))")
    prod = regimes["instruments"]["sim:BTCUSDT"]["production"]
    assert shown == list(prod["macro"]["posteriors"]) + list(prod["micro"]["posteriors"])
    assert "production" in driver.find_element(By.CSS_SELECTOR, f"#models-body tr[data-model='{model_id}']").text
    severe = [e["message"] for e in driver.get_log("browser")
              if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]
    assert severe == []
    shot = tmp_path / "dashboard-hmm.png"
    assert driver.save_screenshot(str(shot))
    print(f"dashboard screenshot: {shot}")
    driver.get("about:blank")
