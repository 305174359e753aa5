"""Replay buffers (uniform and prioritized) and the n-step transition builder.

Transitions are stored already folded over n steps: ``reward`` is the discounted n-step return and
``discount`` is ``gamma**k`` for bootstrapping after k steps, or 0 when the episode *terminated*.
A *truncated* episode (time limit) still bootstraps from its final observation: a time limit is not
a terminal state.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np


class ReplaySample(NamedTuple):
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    discounts: np.ndarray
    weights: np.ndarray
    indices: np.ndarray


class ReplayBuffer:
    """Circular buffer with uniform sampling."""

    def __init__(
        self, capacity: int, observation_shape: tuple[int, ...], seed: int, action_shape: tuple[int, ...] = ()
    ) -> None:
        self.capacity = capacity
        self.observations = np.zeros((capacity, *observation_shape), dtype=np.float32)
        self.next_observations = np.zeros_like(self.observations)
        self.actions = np.zeros((capacity, *action_shape), dtype=np.int64)  # action_shape (k,) for slates
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self.position = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        observation: np.ndarray,
        action: int | np.ndarray,
        reward: float,
        next_observation: np.ndarray,
        discount: float,
    ) -> int:
        index = self.position
        self.observations[index] = observation
        self.actions[index] = action
        self.rewards[index] = reward
        self.next_observations[index] = next_observation
        self.discounts[index] = discount
        self.position = (index + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return index

    def _gather(self, indices: np.ndarray, weights: np.ndarray) -> ReplaySample:
        return ReplaySample(
            self.observations[indices],
            self.actions[indices],
            self.rewards[indices],
            self.next_observations[indices],
            self.discounts[indices],
            weights.astype(np.float32),
            indices,
        )

    def sample(self, batch_size: int, progress: float = 0.0) -> ReplaySample:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        indices = self.rng.integers(0, self.size, size=batch_size)
        return self._gather(indices, np.ones(batch_size, dtype=np.float32))

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Uniform replay ignores priorities."""

    _ARRAYS = ("observations", "next_observations", "actions", "rewards", "discounts")

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name)[: self.size].copy() for name in self._ARRAYS}
        state.update(position=self.position, size=self.size, rng=self.rng.bit_generator.state)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"saved buffer holds {size} transitions, more than capacity {self.capacity}")
        for name in self._ARRAYS:
            getattr(self, name)[:size] = np.asarray(state[name])
        self.position, self.size = int(state["position"]), size
        self.rng.bit_generator.state = state["rng"]


class SumTree:
    """Binary tree of priorities: O(log n) update and prefix-sum search (Schaul et al. 2016).

    The leaves sit at ``leaf_offset``, the smallest power of two that holds ``capacity`` of them, so
    every leaf is at the same depth whatever the capacity; the padding leaves keep priority 0.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.leaf_offset = 1 << max(0, (capacity - 1).bit_length())
        self.nodes = np.zeros(2 * self.leaf_offset, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set leaves (the last value wins for a repeated index), then their ancestors, level by level."""
        indices = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        if indices.size == 0:
            return
        if indices.min() < 0 or indices.max() >= self.capacity:
            raise IndexError(f"sum-tree index out of range 0..{self.capacity - 1}")
        priorities = np.broadcast_to(np.asarray(priorities, dtype=np.float64), indices.shape)
        last = len(indices) - 1 - np.unique(indices[::-1], return_index=True)[1]
        nodes = indices[last] + self.leaf_offset
        self.nodes[nodes] = priorities[last]
        while nodes[0] > 1:
            nodes = np.unique(nodes // 2)
            self.nodes[nodes] = self.nodes[2 * nodes] + self.nodes[2 * nodes + 1]

    def find(self, prefix_sums: np.ndarray) -> np.ndarray:
        """Leaf index for each prefix sum in ``[0, total)``: the first leaf whose cumulative priority exceeds it."""
        nodes = np.ones(len(prefix_sums), dtype=np.int64)
        remaining = np.asarray(prefix_sums, dtype=np.float64).copy()
        for _ in range(self.leaf_offset.bit_length() - 1):  # the depth of every leaf
            left = 2 * nodes
            go_right = remaining >= self.nodes[left]
            remaining = np.where(go_right, remaining - self.nodes[left], remaining)
            nodes = np.where(go_right, left + 1, left)
        # float rounding at a subtree's far edge could step into the padding: stay on a real leaf
        return np.minimum(nodes - self.leaf_offset, self.capacity - 1)

    def leaves(self) -> np.ndarray:
        return self.nodes[self.leaf_offset : self.leaf_offset + self.capacity]

    def load_leaves(self, priorities: np.ndarray) -> None:
        """Rebuild the whole tree from ``capacity`` leaf priorities."""
        self.nodes[:] = 0.0
        self.update(np.arange(self.capacity), np.asarray(priorities, dtype=np.float64)[: self.capacity])


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay: P(i) ~ p_i^alpha, importance weights (N P(i))^-beta / max."""

    def __init__(
        self,
        capacity: int,
        observation_shape: tuple[int, ...],
        seed: int,
        alpha: float,
        beta_start: float,
        action_shape: tuple[int, ...] = (),
    ) -> None:
        super().__init__(capacity, observation_shape, seed, action_shape)
        self.alpha = alpha
        self.beta_start = beta_start
        self.tree = SumTree(capacity)
        self.max_priority = 1.0

    def add(
        self,
        observation: np.ndarray,
        action: int | np.ndarray,
        reward: float,
        next_observation: np.ndarray,
        discount: float,
    ) -> int:
        index = super().add(observation, action, reward, next_observation, discount)
        self.tree.update(np.array([index]), np.array([self.max_priority**self.alpha]))
        return index

    def sample(self, batch_size: int, progress: float = 0.0) -> ReplaySample:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        # Stratified: one draw per equal slice of the total priority mass.
        bounds = np.linspace(0.0, self.tree.total, batch_size + 1)
        prefix_sums = self.rng.uniform(bounds[:-1], bounds[1:])
        indices = np.minimum(self.tree.find(prefix_sums), self.size - 1)
        probabilities = self.tree.leaves()[indices] / self.tree.total
        beta = self.beta_start + (1.0 - self.beta_start) * min(max(progress, 0.0), 1.0)
        weights = (self.size * np.maximum(probabilities, 1e-12)) ** (-beta)
        return self._gather(indices, weights / weights.max())

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        priorities = np.abs(td_errors) + 1e-6
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices, priorities**self.alpha)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(priorities=self.tree.leaves().copy(), max_priority=self.max_priority)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "priorities" in state:
            self.tree.load_leaves(np.asarray(state["priorities"]))
        else:  # checkpoints before the padded tree stored every node, leaves from index `capacity` on
            self.tree.load_leaves(np.asarray(state["tree"])[self.capacity : 2 * self.capacity])
        self.max_priority = float(state["max_priority"])


class NStepFolder:
    """Folds each environment's last n steps into one stored transition.

    ``push`` returns the finished transitions ``(obs, action, n_step_return, next_obs, discount)``.
    On termination every pending step is flushed with discount 0; on truncation with ``gamma**k``
    so the learner bootstraps from the final observation.
    """

    def __init__(self, n_step: int, gamma: float, num_envs: int) -> None:
        self.n_step = n_step
        self.gamma = gamma
        self.pending: list[deque] = [deque() for _ in range(num_envs)]

    def _fold(self, steps: list, next_observation: np.ndarray, terminated: bool) -> tuple:
        observation, action = steps[0][0], steps[0][1]
        n_step_return = sum(self.gamma**k * step[2] for k, step in enumerate(steps))
        discount = 0.0 if terminated else self.gamma ** len(steps)
        return observation, action, n_step_return, next_observation, discount

    def push(
        self,
        env_index: int,
        observation: np.ndarray,
        action: int,
        reward: float,
        next_observation: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> list[tuple]:
        window = self.pending[env_index]
        window.append((observation, action, reward))
        finished = []
        if terminated or truncated:
            while window:
                finished.append(self._fold(list(window), next_observation, terminated))
                window.popleft()
        elif len(window) == self.n_step:
            finished.append(self._fold(list(window), next_observation, False))
            window.popleft()
        return finished

    def reset(self) -> None:
        for window in self.pending:
            window.clear()


def make_replay(
    capacity: int,
    observation_shape: tuple[int, ...],
    seed: int,
    prioritized: bool,
    alpha: float,
    beta_start: float,
    action_shape: tuple[int, ...] = (),
) -> ReplayBuffer:
    if prioritized:
        return PrioritizedReplayBuffer(capacity, observation_shape, seed, alpha, beta_start, action_shape)
    return ReplayBuffer(capacity, observation_shape, seed, action_shape)
