"""report.html of a backtest: well-formed self-contained HTML, one marker per fill, a section per
strategy when several run, and damaged or empty inputs named with their file and line."""

from __future__ import annotations

import csv
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest

from nautilus_hmm.backtest_report import (
    REPORT_FILE,
    drawdown_pct,
    main,
    read_outputs,
    render,
    thin,
    write_report,
)
from nautilus_hmm.core.errors import DataError

VOID = {"meta", "br", "hr", "img", "input", "link"}


class Page(HTMLParser):
    """Parses a page, checks that every element is closed in order, and keeps every start tag."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.errors: list[str] = []
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def having(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and cls in a.get("class", "").split()]


def write_outputs(out: Path, *, fills: list[list[object]] | None = None, equity: list[list[object]] | None = None,
                  strategies: bool = False) -> Path:
    """A small backtest output directory as backtest.write() lays it out."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text('{"bars": 4, "fills": 2, "final_equity": 101.0, "return_pct": 1.0}')
    t0 = 1_740_000_000_000_000_000
    step = 60_000_000_000
    equity = equity if equity is not None else [[t0 + i * step, v] for i, v in enumerate((100.0, 99.0, 102.0, 101.0))]
    with (out / "equity.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts_ns", "equity"])
        w.writerows(equity)
    fills = fills if fills is not None else [[t0 + step, "sim:BTCUSDT", "o1", "t1", "BUY", "0.1", "85000", "0.5", "USDT", "TAKER"],
                                             [t0 + 3 * step, "sim:BTCUSDT", "o2", "t2", "SELL", "0.1", "85100", "0.5", "USDT", "TAKER"]]
    with (out / "fills.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts_ns", "instrument_id", "client_order_id", "trade_id", "side", "qty", "price", "fee",
                    "fee_asset", "liquidity"])
        w.writerows(fills)
    if strategies:
        with (out / "fills_by_strategy.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["ts_ns", "strategy_id", "instrument_id", "kind", "qty", "price", "fee", "trade_id",
                        "client_order_id"])
            w.writerow([t0 + step, "a", "sim:BTCUSDT", "fill", "0.1", "85000", "0.5", "t1", "o1"])
            w.writerow([t0 + 3 * step, "b", "sim:BTCUSDT", "cross", "-0.05", "85100", "0", "", ""])
        with (out / "equity_by_strategy.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["ts_ns", "strategy_id", "equity_usd", "pnl_usd", "capital_usd"])
            for i in range(4):
                w.writerow([t0 + i * step, "a", 50 + i, i, 50])
                w.writerow([t0 + i * step, "b", 50 - i, -i, 50])
        with (out / "allocations.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["ts_ns", "strategy_id", "share", "source"])
            w.writerows([[t0, "a", 0.5, "initial"], [t0, "b", 0.5, "initial"], [t0 + 2 * step, "a", 0.6, "allocator"],
                         [t0 + 2 * step, "b", 0.4, "allocator"]])
    return out


def test_the_page_is_well_formed_with_one_marker_per_fill_and_no_script(tmp_path: Path) -> None:
    path = write_report(write_outputs(tmp_path / "out"))
    text = path.read_text()
    page = Page(text)
    assert page.errors == []
    markers = page.having("path", "trade")
    assert [m["class"] for m in markers] == ["trade buy", "trade sell"]
    assert not [t for t, _ in page.tags if t in ("script", "link", "img", "iframe")]
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no network fetch
    assert {a.get("id") for t, a in page.tags if t == "section"} >= {"summary", "equity"}
    assert not page.having("section", "strategy")  # one strategy: no breakdown


def test_the_price_line_is_the_bars_close_when_given(tmp_path: Path) -> None:
    out = write_outputs(tmp_path / "out")
    t0 = 1_740_000_000_000_000_000
    prices = {"sim:BTCUSDT": ([t0 + i * 60_000_000_000 for i in range(4)], [84990.0, 85000.0, 85050.0, 85100.0])}
    text = write_report(out, prices).read_text()
    assert "on the close price" in text
    page = Page(text)
    lines = [a for t, a in page.tags if t == "polyline" and a.get("data-name") == "close price"]
    assert len(lines) == 1 and len(lines[0]["points"].split()) == 4


def test_several_strategies_get_a_section_each_with_their_own_markers(tmp_path: Path) -> None:
    page = Page(write_report(write_outputs(tmp_path / "out", strategies=True)).read_text())
    assert page.errors == []
    assert [s["data-strategy"] for s in page.having("section", "strategy")] == ["a", "b"]
    assert [m["class"] for m in page.having("path", "strategy-trade")] == ["strategy-trade buy",
                                                                          "strategy-trade sell"]
    assert len(page.having("path", "trade")) == 2  # the account's fills are counted once


def test_text_from_the_files_is_escaped(tmp_path: Path) -> None:
    t0 = 1_740_000_000_000_000_000
    out = write_outputs(tmp_path / "out", fills=[[t0, "sim:<script>alert(1)</script>", "o", "t", "BUY", "1", "2",
                                                  "0", "USDT", "TAKER"]])
    page = Page(write_report(out).read_text())
    assert page.errors == []
    assert not [t for t, _ in page.tags if t == "script"]


def test_thinning_keeps_the_extremes_and_drawdown_is_from_the_running_peak() -> None:
    xs = list(range(100_000))
    ys = [math.sin(i / 500) for i in xs]
    ys[54_321] = -5.0
    tx, ty = thin(xs, ys, 1000)
    assert len(tx) <= 1000 and tx == sorted(tx)
    assert min(ty) == -5.0 and max(ty) == max(ys) and tx[0] == 0 and tx[-1] == 99_999
    assert drawdown_pct([100, 110, 99, 121]) == pytest.approx([0, 0, 10, 0])


def test_a_large_run_renders_a_bounded_page(tmp_path: Path) -> None:
    t0 = 1_740_000_000_000_000_000
    equity = [[t0 + i * 60_000_000_000, 100 + math.sin(i / 100)] for i in range(50_000)]
    out = write_outputs(tmp_path / "out", equity=equity)
    assert write_report(out).stat().st_size < 200_000


# ---------------------------------------------------------------- damaged and empty inputs


def _damage(out: Path, name: str, text: str | bytes) -> None:
    if isinstance(text, bytes):
        (out / name).write_bytes(text)
    else:
        (out / name).write_text(text)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("equity.csv", "", "equity.csv: empty file (no header)"),
    ("equity.csv", "ts_ns,equity\n", "equity.csv: no rows: the backtest replayed no bars"),
    ("equity.csv", "ts_ns,equity\n1,100\n2,10", None),  # cut mid-number still parses: see the next case
    ("equity.csv", "ts_ns,equity\n1,100\n2,", "equity.csv:3: equity = '': not a number"),
    ("equity.csv", "ts_ns,equity\n1,100\n2", "equity.csv:3: 1 fields, the header has 2"),
    ("equity.csv", "ts_ns,equity\n1,100\n2,nan\n", "equity.csv:3: equity = 'nan': not a finite number"),
    ("equity.csv", "ts_ns,equity\n5,100\n2,100\n", "equity.csv:3: ts_ns = 2 goes back in time"),
    ("equity.csv", "ts_ns,equity\n-5,100\n", "equity.csv:2: ts_ns = '-5': not a time in nanoseconds since 1970"),
    ("fills.csv", "ts_ns,instrument_id,client_order_id,trade_id,side,qty,price,fee,fee_asset,liquidity\n"
                  "99999999999999999999999,sim:X,o,t,BUY,1,2,0,USDT,TAKER\n",
     "fills.csv:2: ts_ns = '99999999999999999999999': not a time in nanoseconds"),
    ("equity.csv", "time,value\n1,2\n", "equity.csv:1: header ['time', 'value'] lacks column(s) ['ts_ns', 'equity']"),
    ("equity.csv", b"ts_ns,equity\n1,\xff\xfe\n", "equity.csv"),
    ("summary.json", '{"bars": 4, "fil', "summary.json: not JSON"),
    ("summary.json", "[1, 2]", "summary.json: expected a JSON object, got list"),
    ("fills.csv", "ts_ns,instrument_id,client_order_id,trade_id,side,qty,price,fee,fee_asset,liquidity\n"
                  "1,sim:X,o,t,HOLD,1,2,0,USDT,TAKER\n", "fills.csv:2: side = 'HOLD': expected BUY or SELL"),
    ("fills.csv", "ts_ns,instrument_id,client_order_id,trade_id,side,qty,price,fee,fee_asset,liquidity\n"
                  "1,sim:X,o,t,BUY,1,-2,0,USDT,TAKER\n", "fills.csv:2: price = '-2': must be > 0"),
    ("fills_by_strategy.csv", "ts_ns,strategy_id\n1,a\n", "fills_by_strategy.csv:1: header"),
    ("allocations.csv", "ts_ns,strategy_id,share,source\n1,a,half,initial\n",
     "allocations.csv:2: share = 'half': not a number"),
])
def test_a_damaged_file_is_named_with_its_line_and_no_page_is_written(tmp_path: Path, name: str,
                                                                      content: str | bytes,
                                                                      message: str | None) -> None:
    out = write_outputs(tmp_path / "out", strategies=True)
    _damage(out, name, content)
    if message is None:  # a row cut after a digit is still a valid row: the page is drawn
        assert write_report(out).exists()
        return
    with pytest.raises(DataError) as err:
        write_report(out)
    assert message in str(err.value)
    assert str(out / name) in str(err.value)
    assert not (out / REPORT_FILE).exists()
    assert not list(out.glob(".*tmp"))


def test_a_missing_summary_or_directory_says_it_is_not_a_backtest_output(tmp_path: Path) -> None:
    out = write_outputs(tmp_path / "out")
    (out / "summary.json").unlink()
    with pytest.raises(DataError, match=r"summary\.json: missing: not a backtest output directory"):
        read_outputs(out)
    with pytest.raises(DataError, match="not a directory"):
        read_outputs(tmp_path / "nowhere")


def test_no_fills_is_said_on_the_page(tmp_path: Path) -> None:
    out = write_outputs(tmp_path / "out", fills=[])
    d = read_outputs(out)
    text = render(d)
    assert "No fills: the strategy did not trade." in text
    assert Page(text).errors == []


def test_the_module_command_redraws_and_reports_damage_in_one_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = write_outputs(tmp_path / "out")
    assert main([str(out)]) == 0
    assert (out / REPORT_FILE).exists()
    assert f"wrote {out / REPORT_FILE}" in capsys.readouterr().err
    _damage(out, "equity.csv", "ts_ns,equity\n1,abc\n")
    assert main([str(out)]) == 65
    err = capsys.readouterr().err
    assert err.strip() == f"report not written: {out / 'equity.csv'}:2: equity = 'abc': not a number"
    write_outputs(out)
    assert main([str(out), "--data", str(tmp_path / "missing.csv")]) == 65
    assert capsys.readouterr().err.strip() == (f"report not written: {tmp_path / 'missing.csv'}: "
                                               "cannot read: No such file or directory")


@pytest.mark.parametrize("equity", [[[1_740_000_000_000_000_000, 100.0]],
                                    [[1_740_000_000_000_000_000 + i, 100.0] for i in range(5)],
                                    [[1_740_000_000_000_000_000 + i, v] for i, v in enumerate((0.0, -5.0, 3.0))]],
                         ids=["one-row", "flat", "through-zero"])
def test_degenerate_curves_still_draw(tmp_path: Path, equity: list[list[object]]) -> None:
    out = write_outputs(tmp_path / "out", equity=equity, fills=[])
    page = Page(write_report(out).read_text())
    assert page.errors == []
    assert len([a for t, a in page.tags if t == "polyline" and a.get("data-name") == "equity"]) == 1
    coords = " ".join(a.get("points", "") for t, a in page.tags if t in ("polyline", "polygon"))
    assert "nan" not in coords and "inf" not in coords
