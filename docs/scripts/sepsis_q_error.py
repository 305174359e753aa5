"""How far are a trained sepsis agent's Q-values from the truth, and from its own policy's values?

For each checkpoint: the exact expected return of its greedy policy, the network's own estimate of
that return (max Q averaged over the initial states), and the error of its Q-values over every
admissible (state, action) pair against Q* (the optimum) and against Q^pi (the true values of the
agent's own greedy policy). Q-values that match Q^pi but not Q* mean DQN has settled on its policy's
values; their spread (rms) is what decides whether the greedy choice between close actions is right.
It also splits the policy's gap to the optimum over the states (expected visits x the return lost
by its choice there): is the gap a few costly mistakes, or many small ones?

    .venv/bin/python docs/scripts/sepsis_q_error.py RUN/checkpoints/best.ckpt [MORE.ckpt ...]

By default the network ``attnq evaluate`` restores is scored: the online one, or the weight average
when the run kept one (``learner.weight_average_decay``). ``--network online`` or ``--network target``
scores that network of the checkpoint instead (with Polyak updates the target is an average of the
recent weights); ``--target-network`` is short for ``--network target``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from attnq.agent import load_agent
from attnq_sepsis.environment import observations_for_states
from attnq_sepsis.value_iteration import SepsisMDP


def describe_errors(name: str, errors: np.ndarray) -> str:
    return f"{name}: bias {errors.mean():+.4f}, rms {np.sqrt((errors**2).mean()):.4f}"


def value_of_greedy_policy(q_values_SA: np.ndarray, greedy_actions_S: np.ndarray, mdp: SepsisMDP) -> float:
    """Expected return from the initial states if ``q_values_SA`` are the greedy policy's values."""
    values_S = np.where(mdp.terminal_S, 0.0, q_values_SA[np.arange(len(greedy_actions_S)), greedy_actions_S])
    return float(mdp.initial_S @ values_S)


def describe_gap(greedy_actions_S: np.ndarray, q_star_SA: np.ndarray, mdp: SepsisMDP) -> str:
    live_S = np.flatnonzero(~mdp.terminal_S)
    loss_S = q_star_SA[live_S].max(axis=1) - q_star_SA[live_S, greedy_actions_S[live_S]]
    share_S = mdp.state_visits(mdp.deterministic_policy(greedy_actions_S))[live_S] * loss_S
    gap = share_S.sum()
    if gap < 1e-9:
        return "the greedy policy is optimal: no gap to split"
    costliest_100 = np.sort(share_S)[::-1][:100].sum() / gap
    return (
        f"gap to the optimum {gap:.4f}, from {np.count_nonzero(loss_S > 1e-9)} states' choices; the 100 costliest "
        f"carry {costliest_100:.0%}; choices losing under 0.01 {share_S[loss_S < 0.01].sum() / gap:.0%}, "
        f"0.01-0.03 {share_S[(loss_S >= 0.01) & (loss_S < 0.03)].sum() / gap:.0%}, "
        f"0.03 or more {share_S[loss_S >= 0.03].sum() / gap:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument(
        "--network",
        choices=["exported", "online", "target"],
        default="exported",
        help="which of the checkpoint's networks to score (default: the one `attnq evaluate` restores)",
    )
    parser.add_argument(
        "--target-network", action="store_const", const="target", dest="network", help="same as --network target"
    )
    args = parser.parse_args()
    mdp = q_star_SA = observations = None
    for checkpoint in args.checkpoints:
        agent = load_agent(str(checkpoint), network=args.network)
        if mdp is None:  # every checkpoint is of the same MDP: solve it once
            env = agent.runtime.context.probe_env
            mdp = SepsisMDP.from_env(env)
            q_star_SA = mdp.optimal_q_values(admissible_only=True)  # -inf only where not scored
            observations = torch.as_tensor(observations_for_states(env, np.arange(len(mdp.initial_S))))
        with torch.no_grad():
            q_values_SA = agent.q_network(observations.to(agent.device)).q_values_BA.cpu().numpy()
        greedy_actions_S = np.where(mdp.admissible_SA, q_values_SA, -np.inf).argmax(axis=1)
        q_pi_SA = mdp.policy_q_values(mdp.deterministic_policy(greedy_actions_S))
        scored_SA = mdp.admissible_SA & ~mdp.terminal_S[:, None]
        print(checkpoint)
        print(
            f"  greedy policy's exact return {value_of_greedy_policy(q_pi_SA, greedy_actions_S, mdp):.4f}; "
            f"the network's estimate of it {value_of_greedy_policy(q_values_SA, greedy_actions_S, mdp):.4f}"
        )
        print(
            f"  Q-values vs {describe_errors('Q*', (q_values_SA - q_star_SA)[scored_SA])}; "
            f"vs {describe_errors('Q^pi', (q_values_SA - q_pi_SA)[scored_SA])}"
        )
        print(f"  {describe_gap(greedy_actions_S, q_star_SA, mdp)}", flush=True)


if __name__ == "__main__":
    main()
