"""core.secrets: credentials from the environment or systemd credentials, registered for redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from nautilus_hmm.core import secrets


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NAUTILUS_HMM_BINANCE_API_KEY", "NAUTILUS_HMM_BINANCE_API_SECRET", "CREDENTIALS_DIRECTORY",
                "NAUTILUS_HMM_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def test_the_environment_wins_over_a_credential_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "binance-api-key").write_text("fileKey0123456789\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_KEY", "envKey0123456789")
    assert secrets.venue_credentials("binance") == ("envKey0123456789", None)


def test_systemd_credentials_are_read_without_their_trailing_newline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "binance-api-key").write_text("fileKey0123456789\n")
    (tmp_path / "binance-api-secret").write_text("fileSecret0123456789\r\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert secrets.venue_credentials("binance") == ("fileKey0123456789", "fileSecret0123456789")


def test_every_value_read_is_registered_for_log_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", "adminToken0123456789")
    assert secrets.admin_token() == "adminToken0123456789"
    assert "adminToken0123456789" in secrets.REDACTED_VALUES


def test_a_credential_that_is_a_directory_raises_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "admin-token").mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(IsADirectoryError) as err:
        secrets.admin_token()
    assert err.value.filename == str(tmp_path / "admin-token")


def test_nothing_set_is_none() -> None:
    assert secrets.venue_credentials("binance") == (None, None)
    assert secrets.admin_token() is None


@pytest.mark.parametrize("read", [secrets.admin_token, lambda: secrets.venue_credentials("binance")])
def test_a_credential_that_is_not_utf8_raises_naming_the_file_never_its_content(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read) -> None:
    for name in ("admin-token", "binance-api-key"):
        (tmp_path / name).write_bytes(b"s3cretValue\xff\xfe")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(OSError) as err:
        read()
    assert err.value.filename in (str(tmp_path / "admin-token"), str(tmp_path / "binance-api-key"))
    assert err.value.strerror == "not UTF-8 text (an invalid byte at offset 11)"
    shown = f"{err.value} {err.value!r}"
    assert "s3cret" not in shown and "xff" not in shown and "0xff" not in shown
