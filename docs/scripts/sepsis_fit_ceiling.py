"""How good can a greedy policy of this Q-network be on ICU-Sepsis, if its targets were perfect?

Fits the task's Q-network by supervised regression to the optimal Q-values (value iteration on the
package's own MDP, inadmissible actions left out) over all 713 non-terminal states, and prints the
error over every state as the fit goes on and the exact expected return of its greedy policy at
the end, for each of ``--seeds`` initialisations. It also prints how much the optimum loses when its
Q-values carry Gaussian noise, i.e. how precise learned Q-values must be.
No RL here: it separates "the network cannot represent a near-optimal policy" from "DQN's targets
are too noisy", and compares networks in minutes instead of hours of training.

    .venv/bin/python docs/scripts/sepsis_fit_ceiling.py --torso transformer --steps 4000 --seeds 0 1 2
    .venv/bin/python docs/scripts/sepsis_fit_ceiling.py --steps 4000 --seeds 0 1 2 --set model.queries=4
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
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="task overrides")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # eager: compiling once per seed would take longer than these fits
    runtime = prepare_task(load_task(TASK_FILE, [f"model.torso={args.torso}", "trainer.compile=false", *args.set]))
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
    observations = torch.as_tensor(observations_for_states(env, states), dtype=torch.float32)
    live_states = torch.as_tensor(~mdp.terminal_S).nonzero().squeeze(1)
    admissible_SA = torch.as_tensor(mdp.admissible_SA)
    targets_SA = torch.as_tensor(np.where(mdp.admissible_SA, q_star_SA, 0.0), dtype=torch.float32)

    def squared_error(q_values_BA: torch.Tensor, states_B: torch.Tensor) -> torch.Tensor:
        mask_BA = admissible_SA[states_B]
        return ((q_values_BA - targets_SA[states_B]).pow(2) * mask_BA).sum() / mask_BA.sum()

    for seed in args.seeds:
        torch.manual_seed(seed)
        network = runtime.build_q_network()
        optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
        # annealed, so that the last steps settle the fit instead of jittering around it
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps, eta_min=args.lr / 30)
        started, errors = time.perf_counter(), []
        for step in range(1, args.steps + 1):
            batch = live_states[torch.randint(0, len(live_states), (args.batch,))]
            loss = squared_error(network(observations[batch]).q_values_BA, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % max(1, args.steps // 4) == 0:
                with torch.no_grad():
                    errors.append(f"{squared_error(network(observations[live_states]).q_values_BA, live_states):.2e}")
        with torch.no_grad():
            q_all = network(observations).q_values_BA.masked_fill(~admissible_SA, float("-inf"))
        greedy_value = mdp.deterministic_policy_value(q_all.argmax(dim=1).numpy())
        parameters = sum(p.numel() for p in network.parameters())
        print(
            f"{args.torso} {' '.join(args.set)} seed {seed} ({parameters:,} parameters): mse over all states "
            f"{' -> '.join(errors)}; greedy policy's exact return {greedy_value:.4f} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
