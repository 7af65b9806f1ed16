"""A backtest's report.html in a real headless browser (Debian's chromium + chromedriver through
selenium): a three-strategy backtest of real klines is run here, its page is opened from disk,
and the browser's own layout says every fill marker is drawn inside its chart, every chart has
a size, no resource is fetched and nothing is logged to the console. A screenshot is saved.

Skipped when chromium or chromedriver is missing; NAUTILUS_HMM_REQUIRE_BROWSER=1 fails instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from nautilus_hmm.backtest_report import CHART_H, CHART_W, PAD_B, PAD_L, PAD_R, PAD_T
from nautilus_hmm.cli import main
from tests.conftest import REPO, fixture_path

CHROMIUM = os.environ.get("NAUTILUS_HMM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NAUTILUS_HMM_CHROMEDRIVER", "/usr/bin/chromedriver")


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


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless chromium driven by chromedriver (both paths given: no Selenium Manager download)."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,2400", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER,
                                                            log_output=str(tmp_path / "chromedriver.log")))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def test_report_html_draws_every_fill_inside_its_chart_offline(browser, tmp_path: Path) -> None:
    lines = fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv").read_text().splitlines()
    data = tmp_path / "k.csv"
    data.write_text("\n".join(lines[:3001]) + "\n")
    out = tmp_path / "out"
    assert main(["backtest", "--config", str(REPO / "research/configs/three_strategies.toml"), "--data", str(data),
                 "--out", str(out), "-q"]) == 0
    n_fills = len((out / "fills.csv").read_text().splitlines()) - 1
    n_attributed = len((out / "fills_by_strategy.csv").read_text().splitlines()) - 1
    assert n_fills > 0

    browser.get((out / "report.html").as_uri())
    page = browser.execute_script("""
        const inside = (el) => {  // the marker's box in its own SVG's coordinates
            const b = el.getBBox();
            return [b.x, b.y, b.x + b.width, b.y + b.height];
        };
        return {
            trades: [...document.querySelectorAll('path.trade')].map(inside),
            strategyTrades: document.querySelectorAll('path.strategy-trade').length,
            charts: [...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().height),
            sections: [...document.querySelectorAll('section.strategy')].map(s => s.dataset.strategy),
            resources: performance.getEntriesByType('resource').length,
            title: document.title,
        };""")
    assert len(page["trades"]) == n_fills and page["strategyTrades"] == n_attributed
    for x0, y0, x1, y1 in page["trades"]:  # a triangle may reach its own size past the plot's edge
        assert x0 >= PAD_L - 6 and x1 <= CHART_W - PAD_R + 6, (x0, x1)
        assert y0 >= PAD_T - 10 and y1 <= CHART_H - PAD_B + 10, (y0, y1)
    assert page["charts"] and min(page["charts"]) > 100
    assert page["sections"][:3] == ["trend", "breakout", "revert"]
    assert page["resources"] == 0  # nothing fetched: the page is self-contained
    assert page["title"] == "Backtest report: out"
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
