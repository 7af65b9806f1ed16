"""`research.download`'s pure parts: kline CSV rows, .CHECKSUM text, months and paths."""

from __future__ import annotations

import re
from datetime import date

import pytest

from nautilus_hmm.core.errors import DataError
from nautilus_hmm.research.download import (
    UnverifiableDump,
    daily_rel,
    monthly_rel,
    months_between,
    parse_checksum,
    parse_kline_csv,
    read_kline_zip,
)

# real rows: the binance-public-data README's µs example, and ADABTC 2021-11-27 (ms, shared fixtures)
US_ROW = ("1735689600000000,4.15070000,4.15870000,4.15060000,4.15540000,539.23000000,1735693199999999,"
          "2240.39860900,13,401.82000000,1669.98121300,0")
MS_ROW = ("1637971200000,0.00002862,0.00002862,0.00002861,0.00002861,3178.00000000,1637971259999,"
          "0.09094226,3,0.00000000,0.00000000,0")
DIGEST = "0757f0b51cdaae0e06577214416345ccfcd0cfb6eea77d314f55f19915d92da3"


def test_us_and_ms_open_and_close_times_become_ms_and_the_rest_is_kept_verbatim() -> None:
    b = parse_kline_csv(US_ROW + "\r\n" + MS_ROW + "\r\n", "f.csv")
    assert b.open_ms.tolist() == [1735689600000, 1637971200000]
    assert b.lines[0] == ("1735689600000,4.15070000,4.15870000,4.15060000,4.15540000,539.23000000,1735693199999,"
                          "2240.39860900,13,401.82000000,1669.98121300,0")
    assert b.lines[1] == MS_ROW
    assert b.ohlcv[1].tolist() == [0.00002862, 0.00002862, 0.00002861, 0.00002861, 3178.0]


def test_the_usdm_header_is_skipped_and_line_numbers_count_it() -> None:
    text = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume," \
           "taker_buy_quote_volume,ignore\n" + MS_ROW + "\n" + MS_ROW.replace("0.00002861,3178", "0.00002861,x") + "\n"
    with pytest.raises(DataError) as exc:
        parse_kline_csv(text, "z.zip!z.csv")
    assert str(exc.value) == "z.zip!z.csv:3: volume = 'x.00000000': not a number"


@pytest.mark.parametrize(("text", "message"), [
    ("", "f.csv:1: no kline rows"),
    (MS_ROW + "\n\n" + MS_ROW + "\n", "f.csv:2: blank line, expected 12"),
    (MS_ROW + "\n" + MS_ROW[:40] + "\n", "f.csv:2: wrong column count: 4, expected 12"),
    (MS_ROW.replace("1637971200000,", "16379712e5,", 1) + "\n", "f.csv:1: open_time = '16379712e5': not an integer"),
    (MS_ROW.replace("0.00002862,", "inf,", 1) + "\n", "f.csv:1: not a finite number"),
])
def test_damaged_rows_name_the_line_and_value(text, message) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        parse_kline_csv(text, "f.csv")


def test_a_damaged_zip_is_a_data_error_naming_it(tmp_path) -> None:
    p = tmp_path / "x.zip"
    p.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match=re.escape("http://m/x.zip: not a readable zip")):
        read_kline_zip(p, "http://m/x.zip")


def test_checksum_text_as_binance_publishes_it() -> None:
    name = "BTCUSDT-1m-2017-08.zip"
    assert parse_checksum(f"{DIGEST}  {name}", name, "u") == DIGEST  # no final newline
    assert parse_checksum(f"{DIGEST.upper()} *{name}\n", name, "u") == DIGEST  # binary-mode marker
    assert parse_checksum(DIGEST, name, "u") == DIGEST
    with pytest.raises(UnverifiableDump, match=re.escape("names 'BTCUSDT-1m-2017-09.zip'")):
        parse_checksum(f"{DIGEST}  BTCUSDT-1m-2017-09.zip", name, "u")
    with pytest.raises(UnverifiableDump, match=re.escape("unreadable .CHECKSUM")):
        parse_checksum("<html>404</html>", name, "u")


def test_months_and_paths() -> None:
    assert months_between(date(2024, 11, 15), date(2025, 2, 1)) == [
        date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1)]
    assert monthly_rel("binance_spot", "BNBUSDT", "1m", date(2019, 1, 1)) == \
        "data/spot/monthly/klines/BNBUSDT/1m/BNBUSDT-1m-2019-01.zip"
    assert daily_rel("binance_usdm", "BTCUSDT", "1h", date(2025, 4, 1)) == \
        "data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-04-01.zip"
