"""Exact values on the package's own MDP: the optimum by value iteration, and any policy's value.

ICU-Sepsis exposes its estimated transition and reward tensors (``env.unwrapped.dynamics``), so the
gap between a learned policy and the optimum can be stated exactly, not estimated by rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TERMINAL_STATES = (713, 714, 715)  # death, survival, absorbing (icu_sepsis.utils.constants)


@dataclass(frozen=True)
class SepsisMDP:
    transitions_SAS: np.ndarray
    expected_reward_SA: np.ndarray
    initial_S: np.ndarray
    admissible_SA: np.ndarray
    terminal_S: np.ndarray

    @classmethod
    def from_env(cls, env) -> SepsisMDP:
        dynamics = env.unwrapped.dynamics
        transitions, rewards = dynamics["tx_mat"], dynamics["r_mat"]
        admissible = np.zeros(transitions.shape[:2], dtype=bool)
        for state, actions in enumerate(dynamics["admissible_actions"]):
            admissible[state, actions] = True
        terminal = np.zeros(transitions.shape[0], dtype=bool)
        terminal[list(TERMINAL_STATES)] = True
        return cls(transitions, (transitions * rewards).sum(-1), dynamics["d_0"], admissible, terminal)

    def _fixed_point(self, backup, tolerance: float) -> np.ndarray:
        """Iterate ``values <- backup(values)`` (terminal values pinned at 0) until it settles."""
        values_S = np.zeros(len(self.initial_S))
        for _ in range(100_000):
            new_values = np.where(self.terminal_S, 0.0, backup(values_S))
            converged = np.abs(new_values - values_S).max() < tolerance
            values_S = new_values
            if converged:
                break
        return values_S

    def _q_values(self, values_S: np.ndarray, gamma: float, admissible_only: bool) -> np.ndarray:
        q_SA = self.expected_reward_SA + gamma * self.transitions_SAS @ values_S
        return np.where(self.admissible_SA, q_SA, -np.inf) if admissible_only else q_SA

    def optimal(
        self, gamma: float = 1.0, admissible_only: bool = False, tolerance: float = 1e-10
    ) -> tuple[float, np.ndarray]:
        """(expected return from the initial distribution, greedy optimal action per state)."""
        values_S = self._fixed_point(lambda v: self._q_values(v, gamma, admissible_only).max(axis=1), tolerance)
        return float(self.initial_S @ values_S), self._q_values(values_S, gamma, admissible_only).argmax(axis=1)

    def optimal_q_values(
        self, gamma: float = 1.0, admissible_only: bool = True, tolerance: float = 1e-10
    ) -> np.ndarray:
        """Q*(s, a) for every state and action (-inf for inadmissible ones with ``admissible_only``)."""
        values_S = self._fixed_point(lambda v: self._q_values(v, gamma, admissible_only).max(axis=1), tolerance)
        return self._q_values(values_S, gamma, admissible_only)

    def _policy_state_values(self, policy_SA: np.ndarray, gamma: float, tolerance: float) -> np.ndarray:
        return self._fixed_point(lambda v: (policy_SA * self._q_values(v, gamma, False)).sum(axis=1), tolerance)

    def policy_q_values(self, policy_SA: np.ndarray, gamma: float = 1.0, tolerance: float = 1e-12) -> np.ndarray:
        """Q^pi(s, a) of a stochastic policy given as action probabilities per state."""
        return self._q_values(self._policy_state_values(policy_SA, gamma, tolerance), gamma, False)

    def policy_value(self, policy_SA: np.ndarray, gamma: float = 1.0, tolerance: float = 1e-12) -> float:
        """Expected return of a stochastic policy given as action probabilities per state."""
        return float(self.initial_S @ self._policy_state_values(policy_SA, gamma, tolerance))

    def state_visits(self, policy_SA: np.ndarray) -> np.ndarray:
        """Expected number of visits to each state in an episode under the policy (terminals: 0).

        Weighting a policy's per-state loss ``V*(s) - Q*(s, pi(s))`` by these visits splits its gap to
        the optimum over the states (the performance difference lemma, Kakade & Langford 2002).
        """
        next_state_SS = np.einsum("sa,sat->st", policy_SA, self.transitions_SAS)
        next_state_SS[self.terminal_S] = 0.0
        visits_S = np.linalg.solve(np.eye(len(self.initial_S)) - next_state_SS.T, self.initial_S)
        return np.where(self.terminal_S, 0.0, visits_S)

    def deterministic_policy(self, actions_S: np.ndarray) -> np.ndarray:
        """Action probabilities of "take ``actions_S[s]`` in state s"."""
        policy_SA = np.zeros_like(self.expected_reward_SA)
        policy_SA[np.arange(len(actions_S)), actions_S] = 1.0
        return policy_SA

    def deterministic_policy_value(self, actions_S: np.ndarray, gamma: float = 1.0) -> float:
        """Exact expected return of "take ``actions_S[s]`` in state s" (terminal rows are ignored)."""
        return self.policy_value(self.deterministic_policy(actions_S), gamma)
