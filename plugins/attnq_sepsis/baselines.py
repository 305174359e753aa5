"""Sepsis baselines: the clinicians' policy estimated from MIMIC-III (shipped by the package) and the
optimal policy by value iteration on the package's MDP. ``random`` comes from the core."""

from __future__ import annotations

import numpy as np

from attnq.domain import DomainContext
from attnq_sepsis.environment import state_ids
from attnq_sepsis.value_iteration import SepsisMDP


class ClinicianPolicy:
    """Samples the package's ``expert_policy[state]`` (action probabilities per state)."""

    def __init__(self, context: DomainContext, seed: int) -> None:
        self.policy_SA = np.asarray(context.probe_env.unwrapped.expert_policy)
        self.rng = np.random.default_rng(seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        probabilities = self.policy_SA[state_ids(observations)]
        cumulative = probabilities.cumsum(axis=1)
        draws = self.rng.random((len(probabilities), 1)) * cumulative[:, -1:]
        return (draws > cumulative).sum(axis=1)


class OptimalPolicy:
    """Greedy in the exact optimal Q-values (gamma 1), restricted to admissible actions."""

    def __init__(self, context: DomainContext, seed: int) -> None:
        _, self.actions_S = SepsisMDP.from_env(context.probe_env).optimal(admissible_only=True)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return self.actions_S[state_ids(observations)]
