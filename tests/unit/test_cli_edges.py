"""Wrong arguments a new operator types: every one is a clear message on stderr naming the
option and the value, a usage (2) or documented exit code, and never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

import nautilus_hmm.cli as cli
from nautilus_hmm.cli import main
from tests.conftest import REPO, fixture_path

KLINES = ("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")


@pytest.fixture(autouse=True)
def logging_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Commands configure structlog for the process; loggers are not cached here and the
    previous configuration comes back (a cached logger ignores later capture_logs)."""
    saved = structlog.get_config()
    real = structlog.configure
    monkeypatch.setattr(structlog, "configure", lambda **kw: real(**{**kw, "cache_logger_on_first_use": False}))
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_URL", raising=False)
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN", raising=False)
    yield
    real(**saved)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of `nautilus-hmm ARGV` (argparse's SystemExit included)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def head(n: int, out: Path) -> Path:
    lines = fixture_path(*KLINES).read_text().splitlines()[: n + 1]
    out.write_text("\n".join(lines) + "\n")
    return out


# ------------------------------------------------------------------ admin client options


@pytest.mark.parametrize("url", ["notaurl", "http://[bad", "ftp://127.0.0.1:8080", "http://127.0.0.1:port",
                                 "http://:8080", "http://127.0.0.1:99999"])
def test_a_bad_admin_url_is_a_usage_error_naming_it(url: str, capsys) -> None:
    code, err = run(["ctl", "status", "--url", url], capsys)
    assert code == 2
    assert f"--url {url!r}" in err and "http://127.0.0.1:8080" in err


def test_a_bad_admin_url_from_the_environment_names_the_variable(monkeypatch, capsys) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_URL", "localhost:8080")
    code, err = run(["models", "list"], capsys)
    assert code == 2 and "$NAUTILUS_HMM_ADMIN_URL 'localhost:8080'" in err


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_a_usage_error(timeout: str, capsys) -> None:
    code, err = run(["ctl", "status", "--timeout", timeout, "--url", "http://127.0.0.1:1"], capsys)
    assert code == 2 and f"--timeout: {timeout!r}" in err and "seconds" in err


def test_a_token_file_that_is_not_text_is_named_not_a_traceback(tmp_path: Path, capsys) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_bytes(b"\xff\xfe\x00binary")
    code, err = run(["ctl", "status", "--token-file", str(token_file), "--url", "http://127.0.0.1:1"], capsys)
    assert code == 3 and "cannot reach http://127.0.0.1:1/status" in err  # 3: unreachable


def test_a_model_id_is_sent_as_one_path_segment(monkeypatch, capsys) -> None:
    seen: list[str] = []
    monkeypatch.setattr("nautilus_hmm.admin_client.request",
                        lambda args, method, path, body=None: seen.append(path) or 0)
    assert main(["models", "promote", "../../admin/kill"]) == 0
    assert seen == ["/admin/models/..%2F..%2Fadmin%2Fkill/promote"]


# ------------------------------------------------------------------ offline commands


def test_train_with_an_out_that_is_a_file_stops_before_training(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "taken"
    out.write_text("x")
    monkeypatch.setattr("nautilus_hmm.hmm.train.train_model", lambda *a, **k: pytest.fail("trained anyway"))
    code, err = run(["train", "--data", str(head(50, tmp_path / "k.csv")), "--out", str(out)], capsys)
    assert code == 2 and f"--out {out}: exists and is not a directory" in err
    assert out.read_text() == "x"


def test_train_with_a_registry_that_is_a_file_stops_before_training(tmp_path: Path, capsys, monkeypatch) -> None:
    reg = tmp_path / "models"
    reg.write_text("x")
    monkeypatch.setattr("nautilus_hmm.hmm.train.train_model", lambda *a, **k: pytest.fail("trained anyway"))
    code, err = run(["train", "--data", str(head(50, tmp_path / "k.csv")), "--out", str(tmp_path / "m"),
                     "--registry", str(reg)], capsys)
    assert code == 2 and f"--registry {reg}: exists and is not a directory" in err
    assert not (tmp_path / "m").exists()


def test_train_with_an_instrument_that_is_not_venue_symbol_is_a_usage_error(tmp_path: Path, capsys) -> None:
    code, err = run(["train", "--data", str(head(50, tmp_path / "k.csv")), "--out", str(tmp_path / "m"),
                     "--instrument", "BTCUSDT"], capsys)
    assert code == 2 and "--instrument 'BTCUSDT'" in err and "venue:SYMBOL" in err


def test_infer_with_an_out_that_is_a_directory_stops_before_reading(tmp_path: Path, capsys) -> None:
    out = tmp_path / "posteriors"
    out.mkdir()
    code, err = run(["infer", "--model", str(tmp_path / "nomodel"), "--data", str(tmp_path / "k.csv"),
                     "--out", str(out)], capsys)
    assert code == 2 and f"--out {out}: is a directory" in err


def test_an_output_that_cannot_be_written_is_one_line_naming_it(tmp_path: Path, capsys, monkeypatch) -> None:
    # Whatever a command's own checks miss, an OSError is a message naming the path, exit 1.
    def fails(args: object) -> int:
        raise IsADirectoryError(21, "Is a directory", str(tmp_path / "out.csv"))

    monkeypatch.setattr("nautilus_hmm.models_cli._cmd_infer", fails)
    code, err = run(["infer", "--model", "m", "--data", "d", "--out", "o"], capsys)
    assert code == 1 and err.strip() == f"{tmp_path / 'out.csv'}: Is a directory"


def test_an_unexpected_error_is_one_line_calling_itself_a_bug(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "_cmd_version", lambda args: {}["missing"])
    code, err = run(["version"], capsys)
    assert code == 1
    assert err.startswith("nautilus-hmm version: internal error: KeyError: 'missing'")
    assert "NAUTILUS_HMM_TRACEBACK=1" in err and len(err.strip().splitlines()) == 1


def test_the_traceback_of_an_unexpected_error_is_shown_on_request(monkeypatch) -> None:
    monkeypatch.setattr(cli, "_cmd_version", lambda args: {}["missing"])
    monkeypatch.setenv("NAUTILUS_HMM_TRACEBACK", "1")
    with pytest.raises(KeyError):
        main(["version"])


def test_ctrl_c_exits_130_without_a_traceback(monkeypatch, capsys) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_version", interrupted)
    code, err = run(["version"], capsys)
    assert code == 130 and err.strip() == "nautilus-hmm version: interrupted"


def test_emulator_without_a_venue_names_the_venues(capsys) -> None:
    code, err = run(["emulator"], capsys)
    assert code == 2 and "binance" in err and "rest" not in err


def test_backtest_of_the_readme_command_runs(tmp_path: Path, capsys) -> None:
    # README: nautilus-hmm backtest --config research/configs/sma_cross_anchor.toml --data FILE
    code, err = run(["backtest", "--config", str(REPO / "research/configs/sma_cross_anchor.toml"),
                     "--data", str(head(300, tmp_path / "k.csv"))], capsys)
    assert code == 0, err


SMA_ANCHOR = str(REPO / "research/configs/sma_cross_anchor.toml")


def test_backtest_with_an_out_that_is_a_file_names_the_out_option(tmp_path: Path, capsys) -> None:
    out = tmp_path / "taken"
    out.write_text("x")
    code, err = run(["backtest", "--config", SMA_ANCHOR, "--data", str(head(300, tmp_path / "k.csv")),
                     "--out", str(out)], capsys)
    assert code == 2 and err.strip() == f"--out {out}: exists and is not a directory"


@pytest.mark.parametrize(("instrument", "problem"), [("nonsense", "venue:SYMBOL"), ("sim:NOPE", "USDT")])
def test_backtest_with_a_bad_instrument_names_the_option_and_value(
        tmp_path: Path, capsys, instrument: str, problem: str) -> None:
    code, err = run(["backtest", "--config", SMA_ANCHOR, "--data", str(head(300, tmp_path / "k.csv")),
                     "--instrument", instrument], capsys)
    assert code == 2 and f"--instrument {instrument!r}" in err and problem in err
    assert "internal error" not in err


def test_evaluate_with_an_out_that_is_a_file_stops_before_reading_the_data(tmp_path: Path, capsys) -> None:
    out = tmp_path / "taken"
    out.write_text("x")
    code, err = run(["evaluate", "--data", str(tmp_path / "absent.csv"), "--out", str(out)], capsys)
    assert code == 2 and err.strip() == f"--out {out}: exists and is not a directory"


def test_evaluate_with_an_instrument_that_is_not_venue_symbol_stops_before_training(tmp_path: Path, capsys) -> None:
    code, err = run(["evaluate", "--data", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "ev"),
                     "--instrument", "BTCUSDT"], capsys)
    assert code == 2 and "--instrument 'BTCUSDT'" in err


def test_version_option_prints_the_version(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("nautilus-hmm ")


EMU = ["emulator", "binance", "--api-key", "k", "--api-secret", "s"]


@pytest.mark.parametrize(("option", "value"), [("--port", "99999"), ("--port", "-5"), ("--weight-limit", "-3")])
def test_emulator_numbers_out_of_range_are_usage_errors_naming_the_option(option: str, value: str, capsys) -> None:
    code, err = run([*EMU, option, value], capsys)
    assert code == 2 and f"argument {option}: {value!r}" in err


def test_emulator_on_a_port_in_use_is_one_line_naming_the_address(capsys) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        code, err = run([*EMU, "--port", str(port)], capsys)
    finally:
        taken.close()
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "internal error" not in err


def test_an_unreachable_daemon_names_the_url_and_where_it_came_from(monkeypatch, capsys) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_URL", "http://127.0.0.1:1")
    code, err = run(["ctl", "status"], capsys)
    assert code == 3  # daemon unreachable
    assert err.startswith("cannot reach http://127.0.0.1:1/status: ")
    assert "is the daemon running" in err and "$NAUTILUS_HMM_ADMIN_URL" in err


@pytest.mark.parametrize("command", ["infer", "backtest"])
def test_a_model_option_naming_meta_json_points_at_the_model_file(tmp_path: Path, capsys, command: str) -> None:
    meta = tmp_path / "m" / "meta.json"
    meta.parent.mkdir()
    meta.write_text('{"id": "m-1", "data_sha256": "ab"}')
    data = str(head(50, tmp_path / "k.csv"))
    argv = {"infer": ["infer", "--model", str(meta), "--data", data, "--out", str(tmp_path / "p.csv")],
            "backtest": ["backtest", "--config", str(REPO / "config.toml"), "--data", data, "--model", str(meta)]}
    code, err = run(argv[command], capsys)
    assert code == 65 and f"--model {meta}" in err and f"--model {meta.parent}" in err
