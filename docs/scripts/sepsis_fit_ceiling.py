"""How good can a greedy policy of this Q-network be on ICU-Sepsis, if its targets were perfect?

Fits the task's Q-network by supervised regression to the optimal Q-values (value iteration on the
package's own MDP, inadmissible actions left out) over all 713 non-terminal states, and prints the
exact expected return of its greedy policy as the fit goes on. It also prints how much the optimum
loses when its Q-values carry Gaussian noise, i.e. how precise learned Q-values must be.
No RL here: it separates "the network cannot represent a near-optimal policy" from "DQN's targets
are too noisy".

    .venv/bin/python docs/scripts/sepsis_fit_ceiling.py --torso transformer --steps 3000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from attnq.config import load_task
from attnq.runtime import prepare_task
from attnq_sepsis.environment import observations_for_states
from attnq_sepsis.value_iteration import SepsisMDP

TASK_FILE = Path(__file__).resolve().parents[2] / "tasks" / "sepsis.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torso", default="transformer", choices=["transformer", "mlp"])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="task overrides")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    runtime = prepare_task(load_task(TASK_FILE, [f"model.torso={args.torso}", *args.set]))
    env = runtime.context.probe_env
    mdp = SepsisMDP.from_env(env)
    optimum, _ = mdp.optimal(admissible_only=True)
    q_star_SA = mdp.optimal_q_values(admissible_only=True)  # -inf where inadmissible
    print(f"optimal expected return (admissible actions only): {optimum:.4f}")
    best_two_SA = -np.sort(-np.where(mdp.admissible_SA, q_star_SA, -1.0), axis=1)[:, :2]
    gaps = (best_two_SA[:, 0] - best_two_SA[:, 1])[~mdp.terminal_S]
    print(
        f"gap between the best and second-best action: median {np.median(gaps):.4f}, under 0.01 in "
        f"{np.mean(gaps < 0.01):.0%} of states"
    )

    rng = np.random.default_rng(0)
    for sigma in (0.002, 0.005, 0.01, 0.02):
        noisy = [
            mdp.deterministic_policy_value(np.argmax(q_star_SA + rng.normal(0.0, sigma, q_star_SA.shape), axis=1))
            for _ in range(3)
        ]
        print(f"greedy on optimal Q + N(0, {sigma}) noise: {np.mean(noisy):.4f} (3 draws)")

    states = np.arange(len(mdp.initial_S))
    observations = torch.as_tensor(observations_for_states(env, states))
    live = torch.as_tensor(~mdp.terminal_S)
    admissible_SA = torch.as_tensor(mdp.admissible_SA)
    targets_SA = torch.as_tensor(np.where(mdp.admissible_SA, q_star_SA, 0.0), dtype=torch.float32)
    network = runtime.build_q_network()
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    live_states = torch.nonzero(live).squeeze(1)
    started = time.perf_counter()
    for step in range(args.steps + 1):
        batch = live_states[torch.randint(0, len(live_states), (args.batch,))]
        q_values_BA = network(observations[batch]).q_values_BA
        mask_BA = admissible_SA[batch]
        loss = ((q_values_BA - targets_SA[batch]).pow(2) * mask_BA).sum() / mask_BA.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(1, args.steps // 5) == 0:
            with torch.no_grad():
                q_all = network(observations).q_values_BA.masked_fill(~admissible_SA, float("-inf"))
            greedy_value = mdp.deterministic_policy_value(q_all.argmax(dim=1).numpy())
            print(
                f"{args.torso} step {step}: mse {loss.item():.5f}, greedy policy's exact return {greedy_value:.4f} "
                f"({time.perf_counter() - started:.0f} s)"
            )


if __name__ == "__main__":
    main()
