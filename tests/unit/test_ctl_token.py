"""Where `ctl` finds the admin token and the URL (the places the daemon writes them, in order),
what a 401 says when none was found, and `--config` as a source of both."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from nautilus_hmm.admin_client import resolve_url
from nautilus_hmm.cli import main
from tests.unit.test_cli import AdminStub

REFUSED = b'{"error": "missing or invalid bearer token"}'
VARS = ("NAUTILUS_HMM_ADMIN_TOKEN", "NAUTILUS_HMM_ADMIN_TOKEN_FILE", "NAUTILUS_HMM_ADMIN_URL", "CREDENTIALS_DIRECTORY",
        "STATE_DIRECTORY")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def token_file(path: Path, token: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def config(tmp_path: Path, state_dir: Path, port: int = 0, extra: str = "") -> Path:
    p = tmp_path / "daemon.toml"
    p.write_text(f'[strategy]\nkind = "sma_cross"\n[node]\nstate_dir = "{state_dir}"\n[http]\nport = {port}\n' + extra)
    return p


def sent_token(stub: AdminStub) -> str | None:
    header = stub.seen[-1][2]
    return header.removeprefix("Bearer ") if header else None


def test_each_place_wins_over_the_places_after_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cred, state_env, state_cfg = tmp_path / "cred", tmp_path / "state-env", tmp_path / "state-cfg"
    places = {
        "t-option": None,
        "t-env": None,
        "t-file": token_file(tmp_path / "opt-file", "t-file"),
        "t-env-file": token_file(tmp_path / "env-file", "t-env-file"),
        "t-credential": token_file(cred / "admin-token", "t-credential"),
        "t-state-directory": token_file(state_env / "admin-token", "t-state-directory"),
        "t-config-state-dir": token_file(state_cfg / "admin-token", "t-config-state-dir"),
        "t-working-dir": token_file(Path("state/admin-token"), "t-working-dir"),
    }
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", "t-env")
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN_FILE", str(places["t-env-file"]))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(cred))
    monkeypatch.setenv("STATE_DIRECTORY", str(state_env))
    cfg = config(tmp_path, state_cfg)
    options = {"t-option": ["--token", "t-option"], "t-file": ["--token-file", str(places["t-file"])]}
    with AdminStub() as stub:
        for expected, where in places.items():
            argv = ["ctl", "status", "--url", stub.url, "--config", str(cfg)]
            for opt in options.values():
                argv += opt
            assert main(argv) == 0
            assert sent_token(stub) == expected
            # take this place away: the next one must win
            options.pop(expected, None)
            if expected == "t-env":
                monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN")
            elif expected == "t-env-file":
                monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN_FILE")
            elif where is not None and expected != "t-file":
                where.unlink()


def test_a_401_without_a_token_lists_every_place_tried_in_order(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "cred"))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state-env"))
    cfg = config(tmp_path, tmp_path / "state-cfg")
    with AdminStub(401, REFUSED) as stub:
        assert main(["ctl", "kill", "--url", stub.url, "--config", str(cfg)]) == 4
    assert stub.seen[0][2] is None
    err = capsys.readouterr().err.splitlines()
    start = err.index("no admin token found; places tried, in order:")
    assert err[start + 1:start + 7] == [
        "  --token: not given",
        "  $NAUTILUS_HMM_ADMIN_TOKEN: not set",
        f"  the systemd credential: {tmp_path / 'cred' / 'admin-token'}: not found",
        f"  $STATE_DIRECTORY: {tmp_path / 'state-env' / 'admin-token'}: not found",
        f"  [node] state_dir of --config {cfg}: {tmp_path / 'state-cfg' / 'admin-token'}: not found",
        f"  the default (state/admin-token in the working directory): {tmp_path / 'cwd' / 'state' / 'admin-token'}: "
        "not found",
    ]
    assert "pass --token, set NAUTILUS_HMM_ADMIN_TOKEN" in err[start + 7]


def test_without_a_credentials_directory_the_list_says_it_is_not_set(capsys) -> None:
    with AdminStub(401, REFUSED) as stub:
        assert main(["ctl", "kill", "--url", stub.url]) == 4
    assert "  $CREDENTIALS_DIRECTORY (systemd credential admin-token): not set" in capsys.readouterr().err


def test_a_named_token_file_that_is_missing_is_not_replaced_by_another_token(tmp_path: Path, capsys) -> None:
    token_file(Path("state/admin-token"), "the-default")
    with AdminStub(401, REFUSED) as stub:
        assert main(["ctl", "kill", "--url", stub.url, "--token-file", str(tmp_path / "typo")]) == 4
    assert stub.seen[0][2] is None  # the default file was not sent in its stead
    err = capsys.readouterr().err
    assert f"--token-file: {tmp_path / 'typo'}: not found" in err and "the default" not in err


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda p: p.write_text(""), "is empty"),
    (lambda p: p.write_text("\n \n"), "is empty"),
    (lambda p: p.write_bytes(b"\xff\xfe\x00tok"), "not UTF-8 text (an invalid byte at offset 0)"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_text("two\nlines\n"), "holds a line break or NUL inside"),
])
def test_a_damaged_token_file_is_skipped_with_the_reason_and_the_next_place_used(
        tmp_path: Path, monkeypatch, capsys, damage, reason) -> None:
    cred = tmp_path / "cred"
    cred.mkdir()
    damage(cred / "admin-token")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(cred))
    token_file(Path("state/admin-token"), "t-working-dir")
    with AdminStub() as stub:
        assert main(["ctl", "status", "--url", stub.url]) == 0
    assert sent_token(stub) == "t-working-dir"
    with AdminStub(401, REFUSED) as stub:
        Path("state/admin-token").unlink()
        assert main(["ctl", "kill", "--url", stub.url]) == 4
    err = capsys.readouterr().err
    assert f"the systemd credential: {cred / 'admin-token'}: {reason}" in err
    assert "\xff" not in err  # never a byte of the token


def test_state_directory_takes_its_first_path_as_the_daemon_does(tmp_path: Path, monkeypatch) -> None:
    token_file(tmp_path / "one" / "admin-token", "t-one")
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'one'}:{tmp_path / 'two'}")
    with AdminStub() as stub:
        assert main(["ctl", "status", "--url", stub.url]) == 0
    assert sent_token(stub) == "t-one"


def test_a_readable_by_others_token_file_is_used_with_a_chmod_hint(tmp_path: Path, capsys) -> None:
    path = token_file(Path("state/admin-token"), "t")
    path.chmod(0o640)
    with AdminStub() as stub:
        assert main(["ctl", "status", "--url", stub.url]) == 0
    assert sent_token(stub) == "t"
    assert f"chmod 600 {path}" in capsys.readouterr().err


# ------------------------------------------------------------------ --config: the URL too


def test_the_url_comes_from_the_configs_http_port(tmp_path: Path) -> None:
    with AdminStub() as stub:
        port = int(stub.url.rsplit(":", 1)[1])
        cfg = config(tmp_path, tmp_path / "state", port)
        assert main(["ctl", "--config", str(cfg), "status"]) == 0
    assert stub.seen and stub.seen[0][1] == "/status"


def test_the_url_option_wins_over_the_config(tmp_path: Path) -> None:
    cfg = config(tmp_path, tmp_path / "state", 1)  # nothing listens on port 1
    with AdminStub() as stub:
        assert main(["ctl", "status", "--config", str(cfg), "--url", stub.url]) == 0
    assert stub.seen


def test_a_config_on_port_0_says_to_pass_url(tmp_path: Path) -> None:
    cfg = config(tmp_path, tmp_path / "state", 0)
    base, origin = resolve_url(argparse.Namespace(config=str(cfg)))
    assert base == "http://127.0.0.1:8080"
    assert origin.endswith(f"--config {cfg} has [http] port = 0 (any free port): pass --url")


def test_a_wildcard_bind_address_is_called_on_loopback(tmp_path: Path) -> None:
    cfg = config(tmp_path, tmp_path / "state", 8443)
    cfg.write_text(cfg.read_text().replace("[http]\n", '[http]\nhost = "0.0.0.0"\n'))
    assert resolve_url(argparse.Namespace(config=str(cfg)))[0] == "http://127.0.0.1:8443"


def test_an_invalid_config_is_exit_78_naming_the_field_and_value(tmp_path: Path, capsys) -> None:
    cfg = config(tmp_path, tmp_path / "state", 8080, extra="")
    cfg.write_text(cfg.read_text().replace("port = 8080", "port = 99999"))
    with AdminStub() as stub:
        assert main(["ctl", "status", "--url", stub.url, "--config", str(cfg)]) == 78
        assert stub.seen == []  # nothing sent
    err = capsys.readouterr().err
    assert f"--config {cfg}: 1 error(s)" in err and "http.port" in err and "99999" in err
    assert "Traceback" not in err


def test_a_missing_config_is_exit_78_naming_the_file(tmp_path: Path, capsys) -> None:
    with AdminStub() as stub:
        assert main(["ctl", "status", "--url", stub.url, "--config", str(tmp_path / "nope.toml")]) == 78
    err = capsys.readouterr().err
    assert str(tmp_path / "nope.toml") in err and "Traceback" not in err


def test_a_credential_keeps_its_blanks_as_the_daemon_reads_it(tmp_path: Path, monkeypatch) -> None:
    # core.secrets strips only the line end of a credential; a state-dir file is stripped.
    cred = tmp_path / "cred"
    cred.mkdir()
    (cred / "admin-token").write_bytes(b" spaced token \n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(cred))
    with AdminStub() as stub:
        assert main(["ctl", "status", "--url", stub.url]) == 0
    assert stub.seen[-1][2] == "Bearer  spaced token "


@pytest.mark.parametrize("where", ["option", "env"])
def test_a_token_value_with_a_line_break_is_a_usage_error_that_does_not_show_it(where, monkeypatch, capsys) -> None:
    argv = ["ctl", "status"]
    if where == "option":
        argv += ["--token", "abc\ndef"]
    else:
        monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", "abc\r\ndef")
    with AdminStub() as stub:
        assert main([*argv, "--url", stub.url]) == 2
        assert stub.seen == []
    err = capsys.readouterr().err
    assert "holds a line break" in err and "abc" not in err and "internal error" not in err
