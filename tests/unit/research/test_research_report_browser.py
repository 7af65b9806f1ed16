"""The research report in a real headless browser (Debian's chromium + chromedriver through
selenium): `nautilus-hmm research sim-exec` replays a real capture through the CLI, and the
browser's layout says every chart has a size, every fill point lies inside its plot area, and
nothing is fetched or logged. Skipped when chromium or chromedriver is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from nautilus_hmm.backtest_report import CHART_H, CHART_W, PAD_B, PAD_L, PAD_R, PAD_T
from nautilus_hmm.cli import main
from nautilus_hmm.research import report
from tests.system.test_backtest_report_browser import browser  # noqa: F401 (the fixture)

CAPTURE = Path("/work/shared/fixtures/marketdata/binance_ws_captures_hftbacktest/spot_ethusdt_20240808.gz")


@pytest.mark.skipif(not CAPTURE.exists(), reason="shared fixtures not mounted")
def test_sim_exec_report_draws_its_charts_and_points_inside_them(browser, tmp_path: Path) -> None:  # noqa: F811
    import gzip

    cap = tmp_path / "spot_ethusdt_head.gz"  # the first 8,000 lines: enough fills, a fast test
    cap.write_bytes(gzip.compress(b"\n".join(gzip.decompress(CAPTURE.read_bytes()).split(b"\n")[:8000]), 1))
    out = tmp_path / "run"
    assert main(["research", "sim-exec", "--capture", str(cap), "--out", str(out), "--latency-ms", "2"]) == 0
    n_taker = sum(1 for line in (out / "fills_detail.csv").read_text().splitlines()[1:] if ",TAKER," in line)
    assert n_taker > 0

    browser.get((out / report.REPORT_FILE).as_uri())
    page = browser.execute_script("""
        return {
            charts: [...document.querySelectorAll('svg.chart')].map(s => {
                const r = s.getBoundingClientRect(); return [r.width, r.height]; }),
            points: [...document.querySelectorAll('#slippage circle.point')].map(c => {
                const b = c.getBBox(); return [b.x + b.width / 2, b.y + b.height / 2]; }),
            sections: [...document.querySelectorAll('section')].map(s => s.id).filter(Boolean),
            resources: performance.getEntriesByType('resource').length,
        };
    """)
    assert page["sections"] == ["summary", "equity", "slippage"]
    assert page["charts"] and all(w > 300 and h > 50 for w, h in page["charts"])
    assert len(page["points"]) == n_taker
    for x, y in page["points"]:
        assert PAD_L - 0.5 <= x <= CHART_W - PAD_R + 0.5 and PAD_T - 0.5 <= y <= CHART_H - PAD_B + 0.5
    assert page["resources"] == 0  # self-contained: nothing fetched
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == []
    browser.save_screenshot(str(tmp_path / "research_report.png"))
