"""`ctl regimes` and `ctl models` against a real node with an hmm strategy and a promoted model;
the model admin commands (`nautilus-hmm models`) exit as ctl does (a real 409 is 5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog.testing

from nautilus_hmm.cli import main
from nautilus_hmm.hmm.registry import ModelRegistry
from nautilus_hmm.node import Node
from tests.nodeharness import TOKEN, client, running_node
from tests.unit.hmm.kit import decisive_model

HMM = '[strategy]\nkind = "hmm"\n[hmm]\nhistory_from_venue = false\n'  # no bars: nothing trains at start


@pytest.fixture
async def hmm_node(tmp_path: Path, monkeypatch) -> AsyncIterator[tuple[Node, str, str]]:
    for name in ("NAUTILUS_HMM_ADMIN_TOKEN_FILE", "NAUTILUS_HMM_ADMIN_URL", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    reg = ModelRegistry(tmp_path / "state" / "models")
    model_id = reg.add(decisive_model())
    reg.promote(model_id)
    with structlog.testing.capture_logs():
        async with running_node(tmp_path, monkeypatch, HMM) as (node, url):
            yield node, url, model_id


async def run(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def get(url: str) -> Any:
    async with client() as s, s.get(url) as r:
        return await r.json()


async def test_models_table_shows_the_production_model(hmm_node, capsys) -> None:
    _, url, model_id = hmm_node
    assert await run("ctl", "models", "--url", url) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"production {model_id}, canary -"
    header = out[2].split()
    assert header[:2] == ["ID", "STATUS"]
    row = next(line.split() for line in out[3:] if line.startswith(model_id))
    assert row[1] == "production"


async def test_models_json_is_the_apis_answer(hmm_node, capsys) -> None:
    _, url, _ = hmm_node
    assert await run("ctl", "models", "--json", "--url", url) == 0
    assert orjson.loads(capsys.readouterr().out) == await get(url + "/models")


async def test_regimes_table_has_a_row_per_instrument_and_lane(hmm_node, capsys) -> None:
    _, url, model_id = hmm_node
    api = await get(url + "/regimes")
    assert await run("ctl", "--url", url, "regimes") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"production {model_id}, canary -"
    rows = [line for line in out[3:] if line.strip()]
    assert len(rows) == len(api["instruments"])  # production lanes only: no canary
    for iid in api["instruments"]:
        row = next(r for r in rows if r.startswith(iid))
        assert f"production  {model_id}" in row and ("warming up" in row or "ready" in row)


async def test_a_retrain_the_node_refuses_with_409_is_exit_5_for_models_and_ctl_alike(hmm_node, capsys) -> None:
    _, url, _ = hmm_node
    assert await run("models", "retrain", "--url", url, "--token", TOKEN) == 5
    assert "needs at least" in capsys.readouterr().out  # models prints the JSON answer
    assert await run("ctl", "regimes", "--strategy", "ghost", "--url", url) == 1
    assert "unknown hmm strategy 'ghost'" in capsys.readouterr().err
