"""`nautilus-hmm control bandit-train`: fits the bandit's prior from a journal or a backtest
output; bad input is one line naming the file, exit 2."""

from __future__ import annotations

import sqlite3

import numpy as np
import orjson
import pytest

from nautilus_hmm.cli import main
from nautilus_hmm.control.bandit import (
    BanditConfig,
    EquityPoint,
    fit_prior,
    load_state,
    step_rewards_bps,
)

COLUMNS = "ts_ns INTEGER, strategy_id TEXT, equity_usd REAL, realized_usd REAL, unrealized_usd REAL, fees_usd REAL, capital_usd REAL"


def curve(seed, drift_usd, steps=200, capital=10_000.0):
    rng = np.random.default_rng(seed)
    pnl, out = 0.0, []
    for i in range(steps):
        out.append((1_700_000_000_000_000_000 + i * 60_000_000_000, pnl, capital))
        pnl += drift_usd + rng.normal(0, 10.0)
    return out


def make_journal(path, rows_by_strategy):
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE strategy_equity ({COLUMNS})")
    for sid, rows in rows_by_strategy.items():
        for ts, pnl, cap in rows:
            # realized + unrealized - fees = pnl
            conn.execute("INSERT INTO strategy_equity VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (ts, sid, cap + pnl, pnl + 1.0, 0.5, 1.5, cap))
    conn.commit()
    conn.close()


def make_backtest_dir(directory, rows_by_strategy):
    directory.mkdir()
    lines = ["ts_ns,strategy_id,equity_usd,pnl_usd,capital_usd"]
    for sid, rows in rows_by_strategy.items():
        lines += [f"{ts},{sid},{cap + pnl},{pnl},{cap}" for ts, pnl, cap in rows]
    (directory / "equity_by_strategy.csv").write_text("\n".join(lines) + "\n")
    return directory


CURVES = {"trend": curve(1, 2.0), "revert": curve(2, -1.0), "breakout": curve(3, 0.0)}


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_journal_fits_the_prior_writes_the_state_and_prints_one_row_per_strategy(tmp_path, capsys):
    journal = tmp_path / "journal.sqlite"
    make_journal(journal, CURVES)
    out = tmp_path / "state" / "bandit.json"
    code, stdout, stderr = run(["control", "bandit-train", "--journal", str(journal), "--out", str(out)], capsys)
    assert code == 0, stderr
    doc = orjson.loads(out.read_bytes())
    assert doc["arms"] == {}  # prior only
    assert doc["obs_var"] == pytest.approx(100.0, rel=0.25)  # (10 USD / 10k capital)^2 in bps^2
    rows = [line.split()[0] for line in stdout.splitlines()[2:-1]]
    assert rows == ["breakout", "revert", "trend"]
    assert f"wrote {out}" in stdout
    # The daemon loads the fitted prior.
    bandit = load_state(out, BanditConfig())
    assert bandit.prior_var == pytest.approx(doc["prior_var"])


def test_backtest_directory_gives_the_same_prior_as_the_journal(tmp_path, capsys):
    journal = tmp_path / "journal.sqlite"
    make_journal(journal, CURVES)
    bt = make_backtest_dir(tmp_path / "bt", CURVES)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run(["control", "bandit-train", "--journal", str(journal), "--out", str(a)], capsys)[0] == 0
    assert run(["control", "bandit-train", "--journal", str(bt), "--out", str(b)], capsys)[0] == 0
    da, db = orjson.loads(a.read_bytes()), orjson.loads(b.read_bytes())
    for key in ("prior_mean", "prior_var", "obs_var"):
        assert da[key] == pytest.approx(db[key])


def test_with_evidence_keeps_each_strategys_history(tmp_path, capsys):
    bt = make_backtest_dir(tmp_path / "bt", CURVES)
    out = tmp_path / "b.json"
    assert run(["control", "bandit-train", "--journal", str(bt / "equity_by_strategy.csv"), "--out", str(out),
                "--with-evidence"], capsys)[0] == 0
    arms = orjson.loads(out.read_bytes())["arms"]
    assert arms["trend"]["steps"] == 199


def test_fit_prior_separates_sampling_noise_from_the_spread_of_edges():
    rng = np.random.default_rng(0)
    edges = rng.normal(0.0, 2.0, size=40)  # true prior sd 2 bps
    rewards = {f"s{i}": list(rng.normal(e, 10.0, size=400)) for i, e in enumerate(edges)}
    fitted = fit_prior(rewards, BanditConfig())
    assert fitted.obs_var == pytest.approx(100.0, rel=0.05)
    assert fitted.prior_var == pytest.approx(4.0, rel=0.6)


def test_step_rewards_use_the_capital_held_during_the_step():
    pts = [EquityPoint(2, 30.0, 2000.0), EquityPoint(1, 10.0, 1000.0), EquityPoint(3, 30.0, 0.0)]
    assert step_rewards_bps(pts) == [pytest.approx(200.0), 0.0]


def bad_inputs(tmp_path):
    no_table = tmp_path / "other.sqlite"
    sqlite3.connect(no_table).execute("CREATE TABLE x (a)").connection.commit()
    empty = tmp_path / "empty.sqlite"
    make_journal(empty, {})
    bad_row = tmp_path / "badrow.sqlite"
    make_journal(bad_row, {"trend": curve(1, 1.0, steps=5)})
    conn = sqlite3.connect(bad_row)
    conn.execute("UPDATE strategy_equity SET fees_usd = 'lots' WHERE rowid = 3")
    conn.commit()
    conn.close()
    one_row = tmp_path / "onerow.sqlite"
    make_journal(one_row, {"trend": curve(1, 1.0, steps=2)})
    bt_missing = tmp_path / "bt_missing"
    bt_missing.mkdir()
    bad_csv = make_backtest_dir(tmp_path / "bt_bad", {"trend": curve(1, 1.0, steps=5)})
    csv = bad_csv / "equity_by_strategy.csv"
    csv.write_text(csv.read_text().replace(",10000.0\n", ",ten\n", 1))
    no_col = tmp_path / "nocol.csv"
    no_col.write_text("ts_ns,strategy_id,equity_usd\n1,a,2\n")
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    torn = tmp_path / "torn.sqlite"
    torn.write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)
    return [
        (tmp_path / "nope.sqlite", "no such file"),
        (no_table, "no table strategy_equity"),
        (empty, "has no rows"),
        (bad_row, "strategy_equity rowid 3: fees_usd = 'lots' is not a number"),
        (one_row, "no strategy has 2 PnL steps"),
        (bt_missing, "no equity_by_strategy.csv"),
        (bad_csv, "equity_by_strategy.csv:2: capital_usd = 'ten' is not a number"),
        (no_col, "header lacks column(s) pnl_usd, capital_usd"),
        (empty_csv, "empty file"),
        (text, "neither a journal"),
        (torn, "journal"),
    ]


def test_bad_input_is_one_line_naming_the_file_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out" / "bandit.json"
    for path, problem in bad_inputs(tmp_path):
        code, _, stderr = run(["control", "bandit-train", "--journal", str(path), "--out", str(out)], capsys)
        assert code == 2, (path, stderr)
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
        assert str(path) in stderr and problem in stderr, stderr
        assert not out.exists()


def test_journal_is_opened_read_only(tmp_path, capsys):
    journal = tmp_path / "journal.sqlite"
    make_journal(journal, CURVES)
    journal.chmod(0o444)
    before = journal.read_bytes()
    assert run(["control", "bandit-train", "--journal", str(journal), "--out", str(tmp_path / "b.json")], capsys)[0] == 0
    assert journal.read_bytes() == before
    assert not (tmp_path / "journal.sqlite-wal").exists()
