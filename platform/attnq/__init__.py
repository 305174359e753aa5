"""attnq: one Transformer-DQN, many domains.

Plugin authors need only what is re-exported here::

    from attnq import hookimpl, DomainSpec, StateEncoder, Tokens
"""

from attnq.domain import (
    DomainContext,
    DomainSpec,
    EpisodeMetrics,
    NoOptions,
    Policy,
    RandomPolicy,
    ReturnAndLength,
    RewardAdapter,
    StateEncoder,
    SumRewardAdapter,
    Tokens,
)
from attnq.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "DomainContext",
    "DomainSpec",
    "EpisodeMetrics",
    "NoOptions",
    "Policy",
    "RandomPolicy",
    "ReturnAndLength",
    "RewardAdapter",
    "StateEncoder",
    "SumRewardAdapter",
    "Tokens",
    "hookimpl",
    "__version__",
]
