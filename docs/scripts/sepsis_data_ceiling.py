"""How good can any learner be on ICU-Sepsis, given N transitions collected by a behaviour policy?

Samples N transitions from the package's own MDP with an epsilon-greedy behaviour policy around the
*optimal* policy (epsilon 1 is the uniform random policy over admissible actions), builds the
empirical MDP from the counts (certainty equivalence), solves it by value iteration and prints the
exact expected return of its greedy policy on the true MDP. No network and no TD noise: this
separates "the data does not pin the best action down" from "the learner cannot use the data", and
shows which behaviour policy gives an off-policy learner the most informative data.
Pairs never tried are left out of the empirical MDP's choice (unless a state has none tried).

    .venv/bin/python docs/scripts/sepsis_data_ceiling.py --epsilons 0.02 0.3 1.0 --sizes 200000 600000 2000000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from attnq.config import load_task
from attnq.runtime import prepare_task
from attnq_sepsis.value_iteration import SepsisMDP

TASK_FILE = Path(__file__).resolve().parents[2] / "tasks" / "sepsis.yaml"
PATIENTS_IN_PARALLEL = 1024


class TransitionCounts:
    """Visit counts n(s, a, s') and summed rewards, the sufficient statistics of the empirical MDP."""

    def __init__(self, num_states: int, num_actions: int) -> None:
        self.next_state_SAS = np.zeros((num_states, num_actions, num_states))
        self.reward_sum_SA = np.zeros((num_states, num_actions))

    def add(self, states: np.ndarray, actions: np.ndarray, next_states: np.ndarray, rewards: np.ndarray) -> None:
        np.add.at(self.next_state_SAS, (states, actions, next_states), 1.0)
        np.add.at(self.reward_sum_SA, (states, actions), rewards)

    def empirical_mdp(self, true_mdp: SepsisMDP) -> SepsisMDP:
        visits_SA = self.next_state_SAS.sum(-1)
        tried_SA = visits_SA > 0
        safe_visits_SA = np.maximum(visits_SA, 1.0)
        # a state with no tried action keeps all its admissible ones, so the greedy policy is defined
        choosable_SA = true_mdp.admissible_SA & (tried_SA | ~tried_SA.any(axis=1, keepdims=True))
        return SepsisMDP(
            self.next_state_SAS / safe_visits_SA[..., None],
            self.reward_sum_SA / safe_visits_SA,
            true_mdp.initial_S,
            choosable_SA,
            true_mdp.terminal_S,
        )


class BehaviourPolicy:
    """Epsilon-greedy around the optimal actions; random actions uniform over the admissible ones."""

    def __init__(self, mdp: SepsisMDP, optimal_actions_S: np.ndarray, epsilon: float, rng: np.random.Generator) -> None:
        self.optimal_actions_S, self.epsilon, self.rng = optimal_actions_S, epsilon, rng
        self.num_admissible_S = mdp.admissible_SA.sum(axis=1)
        # row s lists state s's admissible actions first, so a uniform index below the count picks one
        self.admissible_table_SA = np.argsort(~mdp.admissible_SA, axis=1, kind="stable")

    def __call__(self, states: np.ndarray) -> np.ndarray:
        pick = (self.rng.random(len(states)) * np.maximum(self.num_admissible_S[states], 1)).astype(int)
        random_actions = self.admissible_table_SA[states, pick]
        explore = self.rng.random(len(states)) < self.epsilon
        return np.where(explore, random_actions, self.optimal_actions_S[states])


def collect(
    mdp: SepsisMDP,
    reward_SAS: np.ndarray,
    behaviour: BehaviourPolicy,
    counts: TransitionCounts,
    num_transitions: int,
    rng: np.random.Generator,
) -> None:
    """Step PATIENTS_IN_PARALLEL patients through the true MDP until ``num_transitions`` are counted."""
    cumulative_SAS = mdp.transitions_SAS.cumsum(axis=-1)
    num_states = len(mdp.initial_S)
    states = rng.choice(num_states, size=PATIENTS_IN_PARALLEL, p=mdp.initial_S)
    for _ in range(0, num_transitions, PATIENTS_IN_PARALLEL):
        actions = behaviour(states)
        draws = rng.random((len(states), 1))
        next_states = np.minimum((cumulative_SAS[states, actions] < draws).sum(axis=-1), num_states - 1)
        counts.add(states, actions, next_states, reward_SAS[states, actions, next_states])
        finished = mdp.terminal_S[next_states]
        states = np.where(finished, rng.choice(num_states, size=len(states), p=mdp.initial_S), next_states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.02, 0.3, 1.0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[200_000, 600_000, 2_000_000],
        help="cumulative numbers of transitions at which to solve the empirical MDP",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    env = prepare_task(load_task(TASK_FILE)).context.probe_env
    mdp = SepsisMDP.from_env(env)
    reward_SAS = env.unwrapped.dynamics["r_mat"]
    optimum, optimal_actions_S = mdp.optimal(admissible_only=True)
    print(f"optimal expected return (admissible actions only): {optimum:.4f}")
    for epsilon in args.epsilons:
        rng = np.random.default_rng(args.seed)
        behaviour = BehaviourPolicy(mdp, optimal_actions_S, epsilon, rng)
        counts = TransitionCounts(*mdp.admissible_SA.shape)
        collected = 0
        for size in sorted(args.sizes):
            collect(mdp, reward_SAS, behaviour, counts, size - collected, rng)
            collected = size
            _, greedy_actions_S = counts.empirical_mdp(mdp).optimal(admissible_only=True)
            print(
                f"epsilon {epsilon:<5} transitions {size:>9,}  greedy policy of the empirical MDP: "
                f"exact return {mdp.deterministic_policy_value(greedy_actions_S):.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
