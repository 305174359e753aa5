"""Linear epsilon schedule and epsilon-greedy action selection."""

from __future__ import annotations

import numpy as np

from attnq.config import ExplorationConfig


class LinearEpsilon:
    """epsilon goes linearly from ``start`` to ``end`` over ``decay_steps`` env steps, then stays."""

    def __init__(self, start: float, end: float, decay_steps: int) -> None:
        self.start, self.end, self.decay_steps = start, end, max(decay_steps, 1)

    @classmethod
    def from_config(cls, config: ExplorationConfig, max_env_steps: int) -> LinearEpsilon:
        return cls(config.epsilon_start, config.epsilon_end, int(config.decay_fraction * max_env_steps))

    def __call__(self, env_step: int) -> float:
        fraction = min(env_step / self.decay_steps, 1.0)
        return self.start + fraction * (self.end - self.start)


def epsilon_greedy(
    greedy_actions: np.ndarray, epsilon: float, rng: np.random.Generator, random_actions: np.ndarray
) -> np.ndarray:
    """Replace each greedy action (or whole slate) by the given random one with probability epsilon."""
    explore = rng.random(len(greedy_actions)) < epsilon
    return np.where(explore.reshape(-1, *([1] * (np.ndim(greedy_actions) - 1))), random_actions, greedy_actions)
