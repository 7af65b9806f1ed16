"""Recorded-file loaders: real fixtures load, every kind of broken file names its line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from nautilus_hmm.core.errors import DataError
from nautilus_hmm.domain.enums import Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.replay import (
    AGGRESSOR_BUY,
    AGGRESSOR_SELL,
    AGGRESSOR_UNKNOWN,
    Layout,
    detect_layout,
    iter_bars,
    iter_trade_ticks,
    load_bars,
    load_market_file,
    load_trades,
)
from tests.conftest import fixture_path

IID = InstrumentId("sim", "BTCUSDT")
HEADER = "timestamp,open,high,low,close,volume\n"


def ns(text: str) -> int:
    """Epoch ns of an ISO UTC time."""
    dt = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000


def write(tmp_path: Path, text: str, name: str = "f.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def ohlcv(rows: list[str]) -> str:
    return HEADER + "".join(r + "\n" for r in rows)


GOOD_ROWS = [
    "2025-03-01 03:00:00,100,101,99,100.5,1.5",
    "2025-03-01 03:01:00,100.5,102,100,101,2",
    "2025-03-01 03:02:00,101,101.5,100.5,101.2,0.5",
]


def assert_data_error(path: Path, line: int | None, fragment: str, loader=load_bars) -> DataError:
    with pytest.raises(DataError) as ei:
        loader(path)
    err = ei.value
    assert err.path == str(path)
    assert err.line == line, str(err)
    assert fragment in err.problem, err.problem
    return err


# ---------------------------------------------------------------- real files


def test_binance_spot_month_loads_all_rows():
    # How fast is a number printed by benchmarks/replay_bench.py, not a timed test.
    path = fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")
    bars = load_bars(path)
    assert len(bars) == 44_640
    assert bars.interval_s == 60
    assert bars.ts_open_ns.dtype == np.int64
    assert bars.close.dtype == np.float64
    assert int(bars.ts_open_ns[0]) == ns("2025-03-01 03:00:00")
    assert int(bars.ts_open_ns[-1]) == ns("2025-04-01 02:59:00")
    assert (bars.open[0], bars.high[0], bars.low[0], bars.close[0], bars.volume[0]) == (
        85240.45, 85278.16, 85225.95, 85237.0, 10.64798,
    )


def test_binance_dump_klines_ms_are_detected_and_converted():
    path = fixture_path("marketdata", "nautilus_trader", "ADABTC-1m-2021-11-27.csv")
    assert detect_layout(path) is Layout.BINANCE_KLINES
    bars = load_bars(path)
    assert len(bars) == 10
    assert bars.interval_s == 60
    assert int(bars.ts_open_ns[0]) == 1_637_971_200_000 * 1_000_000
    assert bars.open[0] == pytest.approx(0.00002853)
    assert bars.volume[0] == pytest.approx(36304.2)


def test_binance_dump_klines_in_microseconds_match_the_ms_file(tmp_path):
    src = fixture_path("marketdata", "nautilus_trader", "ADABTC-1m-2021-11-28.csv")
    rows = []
    for line in src.read_text().splitlines():
        f = line.split(",")
        f[0] = str(int(f[0]) * 1000)
        f[6] = str(int(f[6]) * 1000 + 999)
        rows.append(",".join(f))
    us = load_bars(write(tmp_path, "\n".join(rows) + "\n"))
    ms = load_bars(src)
    assert np.array_equal(us.ts_open_ns, ms.ts_open_ns)
    assert np.array_equal(us.close, ms.close)


def test_single_kline_row_takes_its_interval_from_close_time(tmp_path):
    src = fixture_path("marketdata", "nautilus_trader", "ADABTC-1m-2021-11-27.csv")
    first = src.read_text().splitlines()[0]
    bars = load_bars(write(tmp_path, first + "\n"))
    assert len(bars) == 1
    assert bars.interval_s == 60


def test_klines_with_open_time_header_load(tmp_path):
    src = fixture_path("marketdata", "nautilus_trader", "ADABTC-1m-2021-11-27.csv")
    header = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
              "taker_buy_volume,taker_buy_quote_volume,ignore\n")
    bars = load_bars(write(tmp_path, header + src.read_text()))
    assert len(bars) == 10


def test_ftx_iso_timestamps_with_fractional_seconds_load():
    path = fixture_path("marketdata", "nautilus_trader", "FTX_btc-perp-20211231-20220201_1m.csv")
    bars = load_bars(path)
    assert len(bars) == 45_031
    assert int(bars.ts_open_ns[0]) == ns("2021-12-31 23:01:00")
    assert bars.interval_s == 60


def test_tardis_trades_load_with_taker_side():
    path = fixture_path("marketdata", "nautilus_trader", "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv")
    assert detect_layout(path) is Layout.TARDIS_TRADES
    trades = load_trades(path)
    assert len(trades) == 9_999
    assert int(trades.ts_ns[0]) == 1_582_329_602_111_000 * 1000
    assert trades.price[0] == 9682.0
    assert trades.size[0] == pytest.approx(0.132)
    assert trades.trade_id[0] == "42377944"
    assert int((trades.aggressor == AGGRESSOR_BUY).sum()) == 5267
    assert int((trades.aggressor == AGGRESSOR_SELL).sum()) == 4732


def test_load_market_file_returns_bars_or_trades_by_layout():
    bars = load_market_file(fixture_path("marketdata", "nautilus_trader", "ADABTC-1m-2021-11-27.csv"))
    trades = load_market_file(
        fixture_path("marketdata", "nautilus_trader", "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv")
    )
    assert type(bars).__name__ == "BarArrays"
    assert type(trades).__name__ == "TradeArrays"


# ---------------------------------------------------------------- generic OHLCV


def test_ohlcv_iso_naive_timestamps_are_utc(tmp_path):
    bars = load_bars(write(tmp_path, ohlcv(GOOD_ROWS)))
    assert bars.ts_open_ns.tolist() == [ns("2025-03-01 03:00:00") + i * 60_000_000_000 for i in range(3)]


def test_ohlcv_iso_with_offset_is_converted_to_utc(tmp_path):
    rows = [r.replace(" 03:", "T04:", 1).replace(",", "+01:00,", 1) for r in GOOD_ROWS]
    bars = load_bars(write(tmp_path, ohlcv(rows)))
    assert int(bars.ts_open_ns[0]) == ns("2025-03-01 03:00:00")


@pytest.mark.parametrize("unit", [1, 1_000, 1_000_000, 1_000_000_000])
def test_ohlcv_epoch_timestamps_in_any_unit(tmp_path, unit):
    t0_s = 1_740_798_000
    rows = [f"{(t0_s + 60 * i) * unit},100,101,99,100,1" for i in range(3)]
    bars = load_bars(write(tmp_path, ohlcv(rows)))
    assert int(bars.ts_open_ns[0]) == t0_s * 1_000_000_000
    assert bars.interval_s == 60


def test_interval_is_the_most_common_step_and_gaps_are_allowed(tmp_path):
    rows = [f"{1_740_798_000 + 300 * i},100,101,99,100,1" for i in (0, 1, 2, 5, 6)]
    bars = load_bars(write(tmp_path, ohlcv(rows)))
    assert bars.interval_s == 300
    assert len(bars) == 5


def test_interval_override_is_checked_against_the_steps(tmp_path):
    bars = load_bars(write(tmp_path, ohlcv(GOOD_ROWS)), interval_s=30)
    assert bars.interval_s == 30


def test_crlf_line_endings_load(tmp_path):
    p = tmp_path / "crlf.csv"
    p.write_bytes(ohlcv(GOOD_ROWS).replace("\n", "\r\n").encode())
    assert len(load_bars(p)) == 3


# ---------------------------------------------------------------- broken files


def test_empty_file_is_named(tmp_path):
    assert_data_error(write(tmp_path, ""), 1, "empty file (0 bytes")


def test_whitespace_only_file_is_empty(tmp_path):
    assert_data_error(write(tmp_path, "\n\n"), 1, "empty file")


def test_header_without_rows_is_an_error(tmp_path):
    assert_data_error(write(tmp_path, HEADER), 2, "no data rows")


def test_unknown_layout_names_line_one(tmp_path):
    assert_data_error(write(tmp_path, "a,b,c\n1,2,3\n"), 1, "unknown layout")


def test_wrong_column_count_names_the_line(tmp_path):
    rows = [*GOOD_ROWS[:2], "2025-03-01 03:02:00,101,101.5,100.5,101.2", GOOD_ROWS[2]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 4, "wrong column count: 5, expected 6")


def test_blank_interior_line_is_an_error(tmp_path):
    rows = [GOOD_ROWS[0], "", GOOD_ROWS[1]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 3, "blank line")


def test_non_numeric_value_names_line_and_value(tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[1].replace("102", "1O2"), GOOD_ROWS[2]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 3, "high '1O2' is not a number")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "NaN"])
def test_nan_or_inf_is_rejected(tmp_path, bad):
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[2].replace(",0.5", f",{bad}")]
    assert_data_error(write(tmp_path, ohlcv(rows)), 4, "not finite")


def test_high_below_low_is_rejected(tmp_path):
    rows = [GOOD_ROWS[0], "2025-03-01 03:01:00,100.5,99,100,100,2", GOOD_ROWS[2]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 3, "high 99 < low 100")


def test_close_above_high_is_inconsistent(tmp_path):
    rows = [GOOD_ROWS[0], "2025-03-01 03:01:00,100.5,102,100,103,2", GOOD_ROWS[2]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 3, "OHLC inconsistent")


def test_negative_volume_is_rejected(tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[1].replace(",2", ",-2"), GOOD_ROWS[2]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 3, "negative volume")


def test_repeated_bar_timestamp_is_not_increasing(tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1].replace("100.5,102", "101,102")]
    err = assert_data_error(write(tmp_path, ohlcv(rows)), 4, "timestamps not increasing")
    assert "line 3" in err.problem


def test_bar_off_the_interval_grid_is_rejected(tmp_path):
    rows = [*GOOD_ROWS, "2025-03-01 03:03:30,101,101.5,100.5,101.2,0.5",
            "2025-03-01 03:04:00,101,101.5,100.5,101.2,0.5"]
    assert_data_error(write(tmp_path, ohlcv(rows)), 5, "off the 60 s grid")


def test_truncated_last_line_is_reported(tmp_path):
    text = ohlcv(GOOD_ROWS) + "2025-03-01 03:03:00,101,101.5"
    assert_data_error(write(tmp_path, text), 5, "truncated last line")


def test_truncated_last_value_is_reported(tmp_path):
    text = ohlcv(GOOD_ROWS) + "2025-03-01 03:03:00,101,101.5,100.5,101.2,"
    assert_data_error(write(tmp_path, text), 5, "truncated last line")


def test_last_line_without_newline_is_fine_when_complete(tmp_path):
    text = ohlcv(GOOD_ROWS).rstrip("\n")
    assert len(load_bars(write(tmp_path, text))) == 3


def test_truncated_kline_dump_names_the_last_line(tmp_path):
    src = fixture_path("marketdata", "nautilus_trader", "ADABTC-1m-2021-11-27.csv")
    text = src.read_text()
    assert_data_error(write(tmp_path, text[: len(text) - 30]), 10, "truncated last line")


def test_single_generic_row_needs_an_interval(tmp_path):
    assert_data_error(write(tmp_path, ohlcv(GOOD_ROWS[:1])), 2, "single row")


def test_bad_iso_timestamp_names_the_line(tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[1].replace("2025-03-01 03:01:00", "2025-03-01 3pm"), GOOD_ROWS[2]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 3, "not an ISO-8601 datetime")


def test_trades_file_given_to_load_bars_is_refused():
    path = fixture_path("marketdata", "nautilus_trader", "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv")
    assert_data_error(path, 1, "use load_trades")


# ---------------------------------------------------------------- trades


BINANCE_TRADES = [
    "1001,84000.01,0.002,168.00002,1740787200000000,True,True",
    "1002,84000.02,0.010,840.0002,1740787200000000,False,True",
    "1003,84000.00,0.500,42000.0,1740787200123456,true,True",
]


def test_binance_trades_without_header_microseconds(tmp_path):
    p = write(tmp_path, "\n".join(BINANCE_TRADES) + "\n")
    assert detect_layout(p) is Layout.BINANCE_TRADES
    trades = load_trades(p)
    assert trades.ts_ns.tolist() == [1_740_787_200_000_000_000, 1_740_787_200_000_000_000,
                                     1_740_787_200_123_456_000]
    # buyer is maker → the seller took liquidity
    assert trades.aggressor.tolist() == [AGGRESSOR_SELL, AGGRESSOR_BUY, AGGRESSOR_SELL]
    assert trades.trade_id.tolist() == ["1001", "1002", "1003"]


def test_binance_trades_with_header_six_columns_ms(tmp_path):
    rows = ["id,price,qty,quote_qty,time,is_buyer_maker"] + [
        ",".join(r.split(",")[:6]).replace("1740787200000000", "1740787200000").replace(
            "1740787200123456", "1740787200123") for r in BINANCE_TRADES
    ]
    trades = load_trades(write(tmp_path, "\n".join(rows) + "\n"))
    assert len(trades) == 3
    assert int(trades.ts_ns[2]) == 1_740_787_200_123_000_000


def test_trades_going_back_in_time_are_rejected(tmp_path):
    rows = [BINANCE_TRADES[0], BINANCE_TRADES[2], BINANCE_TRADES[1]]
    assert_data_error(write(tmp_path, "\n".join(rows) + "\n"), 3, "timestamps not increasing", load_trades)


def test_bad_buyer_maker_flag_is_named(tmp_path):
    rows = [BINANCE_TRADES[0], BINANCE_TRADES[1].replace("False", "maybe"), BINANCE_TRADES[2]]
    # 'maybe' makes line 1 still detect as trades; line 2 is the bad one
    assert_data_error(write(tmp_path, "\n".join(rows) + "\n"), 2, "is_buyer_maker 'maybe'", load_trades)


def test_zero_trade_size_is_rejected(tmp_path):
    rows = [BINANCE_TRADES[0], BINANCE_TRADES[1].replace("0.010", "0"), BINANCE_TRADES[2]]
    assert_data_error(write(tmp_path, "\n".join(rows) + "\n"), 2, "size 0 is not positive", load_trades)


def test_tardis_unknown_side_maps_to_unknown_aggressor(tmp_path):
    text = (
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "bitmex,XBTUSD,1582329602111000,1582329602418379,a1,unknown,9682,10\n"
    )
    trades = load_trades(write(tmp_path, text))
    assert trades.aggressor.tolist() == [AGGRESSOR_UNKNOWN]


# ---------------------------------------------------------------- message iteration


def test_iter_bars_stamps_open_time_and_known_time(tmp_path):
    bars = load_bars(write(tmp_path, ohlcv(GOOD_ROWS)))
    out = list(iter_bars(bars, IID))
    assert len(out) == 3
    first = out[0]
    assert first.ts_event_ns == ns("2025-03-01 03:00:00")
    assert first.ts_init_ns == ns("2025-03-01 03:01:00")
    assert (first.open, first.high, first.low, first.close, first.volume) == (100.0, 101.0, 99.0, 100.5, 1.5)
    assert first.interval_s == 60
    assert first.instrument_id == IID
    assert type(first.open) is float


def test_iter_trade_ticks_maps_aggressor_to_side(tmp_path):
    trades = load_trades(write(tmp_path, "\n".join(BINANCE_TRADES) + "\n"))
    ticks = list(iter_trade_ticks(trades, IID))
    assert [t.aggressor for t in ticks] == [Side.SELL, Side.BUY, Side.SELL]
    assert ticks[0].trade_id == "1001"
    assert ticks[0].price == 84000.01


def test_bar_arrays_slice_keeps_interval(tmp_path):
    bars = load_bars(write(tmp_path, ohlcv(GOOD_ROWS)))
    part = bars.slice(1)
    assert len(part) == 2
    assert part.interval_s == 60
    assert int(part.ts_open_ns[0]) == int(bars.ts_open_ns[1])


# ---------------------------------------------------------------- damaged timestamps and bytes
# Each is a DataError naming the line and the value, never an OverflowError or a wrapped date.

EPOCH_ROWS = [
    "1740787200,100,101,99,100.5,1.5",
    "1740787260,100.5,102,100,101,2",
    "1740787320,101,101.5,100.5,101.2,0.5",
]


def test_epoch_timestamp_beyond_int64_names_the_line_and_value(tmp_path):
    rows = [*EPOCH_ROWS[:2], "99999999999999999999,101,101.5,100.5,101.2,0.5"]
    err = assert_data_error(write(tmp_path, ohlcv(rows)), 4, "timestamp '99999999999999999999'")
    assert "out of range" in err.problem


def test_negative_epoch_timestamp_beyond_int64_is_a_data_error(tmp_path):
    rows = ["-99999999999999999999,100,101,99,100.5,1.5", *EPOCH_ROWS[1:]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 2, "timestamp '-99999999999999999999'")


def test_kline_open_time_beyond_int64_is_a_data_error(tmp_path):
    src = fixture_path("marketdata", "nautilus_trader", "ADABTC-1m-2021-11-27.csv")
    lines = src.read_text().splitlines()[:5]
    fields = lines[2].split(",")
    fields[0] = "1" + "0" * 25
    lines[2] = ",".join(fields)
    err = assert_data_error(write(tmp_path, "\n".join(lines) + "\n"), 3, "open_time '1" + "0" * 25 + "'")
    assert "out of range" in err.problem


def test_negative_epoch_timestamp_is_rejected(tmp_path):
    rows = [EPOCH_ROWS[0], "-60,100.5,102,100,101,2", EPOCH_ROWS[2]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 3, "timestamp '-60' is negative")


def test_iso_date_after_2262_is_a_data_error_not_a_wrapped_date(tmp_path):
    rows = [r.replace("2025", "2625") for r in GOOD_ROWS]
    err = assert_data_error(write(tmp_path, ohlcv(rows)), 2, "timestamp '2625-03-01 03:00:00'")
    assert "2262" in err.problem


def test_iso_date_after_2262_on_a_later_line_is_named(tmp_path):
    rows = [*GOOD_ROWS, "2625-03-01 03:03:00,101,101.5,100.5,101.2,0.5"]
    assert_data_error(write(tmp_path, ohlcv(rows)), 5, "timestamp '2625-03-01 03:03:00'")


def test_iso_date_with_offset_after_2262_is_a_data_error(tmp_path):
    rows = [r.replace("2025", "2625").replace(",100", "+00:00,100", 1) for r in GOOD_ROWS]
    assert_data_error(write(tmp_path, ohlcv(rows)), 2, "timestamp '2625-03-01 03:00:00+00:00'")


def test_iso_date_before_1970_is_a_data_error(tmp_path):
    rows = [r.replace("2025", "1925") for r in GOOD_ROWS]
    err = assert_data_error(write(tmp_path, ohlcv(rows)), 2, "timestamp '1925-03-01 03:00:00'")
    assert "1970" in err.problem


@pytest.mark.parametrize("bad", ["0", "-100"])
def test_non_positive_price_is_rejected(tmp_path, bad):
    rows = [GOOD_ROWS[0], GOOD_ROWS[1].replace(",100,", f",{bad},"), GOOD_ROWS[2]]
    assert_data_error(write(tmp_path, ohlcv(rows)), 3, f"low={bad}")


def test_non_utf8_byte_names_the_line_and_byte(tmp_path):
    p = tmp_path / "f.csv"
    p.write_bytes(ohlcv(GOOD_ROWS).encode().replace(b"101.5", b"101\xff5"))
    assert_data_error(p, 4, "not UTF-8 text (byte 0xff)")


def test_trade_time_beyond_int64_is_a_data_error(tmp_path):
    rows = [BINANCE_TRADES[0], BINANCE_TRADES[1].replace("1740787200000000", "9" * 22), BINANCE_TRADES[2]]
    assert_data_error(write(tmp_path, "\n".join(rows) + "\n"), 2, "time '" + "9" * 22 + "'", load_trades)


@pytest.mark.parametrize("bad", ["nan", "inf", "-1"])
def test_trade_price_not_finite_or_negative_is_rejected(tmp_path, bad):
    rows = [BINANCE_TRADES[0], BINANCE_TRADES[1].replace("84000.02", bad), BINANCE_TRADES[2]]
    err = assert_data_error(write(tmp_path, "\n".join(rows) + "\n"), 2, "price", load_trades)
    assert bad in err.problem
