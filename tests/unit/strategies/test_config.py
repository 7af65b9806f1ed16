"""[[strategies]] through the real loader: parsed into instances, every error named by its path."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal

import pytest

from nautilus_hmm.config import loader
from nautilus_hmm.core.fields import setting
from nautilus_hmm.strategies.config import (
    MeanReversionParams,
    SmaCrossConfig,
    StrategyConfig,
    StrategyInstanceConfig,
)


@dataclass(frozen=True, slots=True)
class Root:
    """A config root holding [[strategies]] as the integrator's schema does."""

    strategies: tuple[StrategyInstanceConfig, ...] = setting((), live=False, doc="strategies")


TWO = """
[[strategies]]
id = "trend"
kind = "sma_cross"
instruments = ["sim:BTCUSDT", "sim:ETHUSDT"]
weight = 2.0
max_share = 0.6
[strategies.sma_cross]
fast = 5
slow = 20
exposure = 0.5

[[strategies]]
id = "reverter"
kind = "mean_reversion"
quota_usd = 5000.0
[strategies.mean_reversion]
window = 30
entry_z = 2.5
short = true
"""


def parse(text: str) -> Root:
    return loader.parse(Root, tomllib.loads(text), "c.toml")


def errors(text: str) -> list[str]:
    with pytest.raises(loader.ConfigError) as exc:
        parse(text)
    return exc.value.errors


def test_an_array_of_strategies_parses_into_instances_with_their_kinds_params() -> None:
    trend, reverter = parse(TWO).strategies
    assert (trend.id, trend.kind, trend.instruments, trend.weight, trend.max_share) == \
        ("trend", "sma_cross", ("sim:BTCUSDT", "sim:ETHUSDT"), 2.0, 0.6)
    assert (trend.sma_cross.fast, trend.sma_cross.slow, trend.sma_cross.exposure, trend.sma_cross.quantity) == \
        (5, 20, 0.5, Decimal(0))
    assert (reverter.kind, reverter.quota_usd, reverter.enabled, reverter.canary_share) == \
        ("mean_reversion", 5000.0, True, 0.0)
    assert reverter.mean_reversion == MeanReversionParams(window=30, entry_z=2.5, short=True)
    assert reverter.params() is reverter.mean_reversion and reverter.check() == []


def test_a_kinds_param_error_is_named_by_the_strategys_index_and_section() -> None:
    bad = TWO + '\n[[strategies]]\nid = "x"\nkind = "sma_cross"\n[strategies.sma_cross]\nfast = 50\nslow = 30\n'
    assert errors(bad) == ["strategies[2].sma_cross.fast = 50: must be < slow (30)"]


@pytest.mark.parametrize(("body", "message"), [
    ('id = "Trend!"\nkind = "hmm"',
     "strategies[0].id = \"Trend!\": must be 1-32 characters of a-z, 0-9, '_' and '-', "
     "starting with a letter or digit"),
    ('id = "_house"\nkind = "hmm"', 'strategies[0].id = "_house": must be 1-32'),
    ('kind = "hmm"', "strategies[0].id: required key is missing"),
    ('id = "a"\nkind = "rsi"', "strategies[0].kind = \"rsi\": must be one of 'hmm', 'sma_cross', 'breakout', "
                               "'mean_reversion'"),
    ('id = "a"\nkind = "hmm"\nmin_share = 0.6\nmax_share = 0.5', "strategies[0].min_share = 0.6: must be <= "
                                                                   "max_share (0.5)"),
    ('id = "a"\nkind = "breakout"\ncanary_share = 0.2', "strategies[0].canary_share = 0.2: only an hmm strategy "
                                                          "has a canary model (kind is 'breakout'); must be 0"),
    ('id = "a"\nkind = "hmm"\nmax_share = 1.5', "strategies[0].max_share = 1.5: must be <= 1"),
    ('id = "a"\nkind = "hmm"\ninstruments = []', "strategies[0].instruments = []: must not be empty"),
    ('id = "a"\nkind = "hmm"\nwieght = 1.0', "strategies[0].wieght = 1.0: unknown key (did you mean 'weight'?)"),
    ('id = "a"\nkind = "mean_reversion"\n[strategies.mean_reversion]\nentry_z = 1.0\nexit_z = 1.0',
     "strategies[0].mean_reversion.exit_z = 1.0: must be < entry_z (1)"),
    ('id = "a"\nkind = "breakout"\n[strategies.breakout]\nlookback = 1',
     "strategies[0].breakout.lookback = 1: must be >= 2"),
    ('id = "a"\nkind = "sma_cross"\n[strategies.sma_cross]\nquantity = "-1"',
     'strategies[0].sma_cross.quantity = "-1": must be >= 0'),
])
def test_a_bad_instance_is_reported_by_its_path_and_value(body: str, message: str) -> None:
    (err,) = errors("[[strategies]]\n" + body + "\n")
    assert err.startswith(message)


def test_every_bad_instance_is_reported_at_once() -> None:
    errs = errors('[[strategies]]\nid = "A"\nkind = "hmm"\n[[strategies]]\nid = "b"\nkind = "x"\n')
    assert [e.split(" =")[0] for e in errs] == ["strategies[0].id", "strategies[1].kind"]


def test_reload_tags_make_sizes_and_shares_live_and_windows_and_kinds_restart() -> None:
    docs = loader.field_docs(StrategyInstanceConfig)
    live = {path for path, (_, tag) in docs.items() if tag}
    assert {"enabled", "weight", "min_share", "max_share", "quota_usd", "canary_share", "sma_cross.exposure",
            "sma_cross.quantity", "breakout.exposure", "mean_reversion.entry_z"} <= live
    assert not {"id", "kind", "instruments", "bar_interval_s", "sma_cross.fast", "breakout.lookback",
                "mean_reversion.window"} & live


def test_the_single_strategy_table_is_one_instance_named_by_its_kind() -> None:
    old = StrategyConfig(kind="sma_cross", instruments=("sim:BTCUSDT",), bar_interval_s=60,
                         sma_cross=SmaCrossConfig(fast=20, slow=60, quantity=Decimal("0.1")))
    inst = old.as_instance()
    assert (inst.id, inst.kind, inst.instruments, inst.bar_interval_s, inst.weight, inst.enabled) == \
        ("sma_cross", "sma_cross", ("sim:BTCUSDT",), 60, 1.0, True)
    assert (inst.sma_cross.fast, inst.sma_cross.slow, inst.sma_cross.quantity) == (20, 60, Decimal("0.1"))
    assert inst.check() == []
    hmm = StrategyConfig().as_instance(canary_share=0.25)
    assert (hmm.id, hmm.kind, hmm.canary_share) == ("hmm", "hmm", 0.25)
