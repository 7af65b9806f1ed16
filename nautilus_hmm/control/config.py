"""[control] — the control plane's settings, composed from each part's own section.

Each part declares its dataclass next to its code (`control.router.RouterConfig`,
`control.allocator.AllocatorConfig`, `control.bandit.BanditConfig`,
`control.governance.GovernanceConfig`); this module only puts them under one table.
"""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.control.allocation import AllocatorConfig
from nautilus_hmm.control.bandit import BanditConfig
from nautilus_hmm.control.governance import GovernanceConfig
from nautilus_hmm.control.router import RouterConfig
from nautilus_hmm.core.fields import section


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """[control] — router, allocator, bandit feedback and governance."""

    router: RouterConfig = section(RouterConfig, doc="netting, quotas, attribution of the strategies' sub-accounts")
    allocator: AllocatorConfig = section(AllocatorConfig, doc="capital shares that follow the strategies' equity curves")
    bandit: BanditConfig = section(BanditConfig, doc="Thompson-sampling feedback blended into the allocation")
    governance: GovernanceConfig = section(GovernanceConfig, doc="rules that reduce, disable, promote and roll back on evidence")
