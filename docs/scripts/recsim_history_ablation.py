"""What a recsim-interest agent earns when it cannot read its user's consumed history, against the
same agent reading it: how much its decisions depend on the history its attention reads.

Each run's agent is evaluated three times on the same users (the task's eval seed and episode
count): as trained; with another user's history in place of its own (the next user's in the
evaluation batch: a history like those it trained on, not this user's); and with every history
token marked absent, so that the documents attend to the [CLS] token alone (the Transformer) or the
history's features are zeroed (the MLP ablation), a state it met only at an episode's start. Also
printed: how many distinct slates the agent recommends as trained, and the most common one's share.

    .venv/bin/python docs/scripts/recsim_history_ablation.py docs/reports/full/runs/recsim-interest/transformer-seed0
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from attnq.agent import load_agent
from attnq.evaluation import evaluate_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="recsim-interest run folders")
    parser.add_argument("--episodes", type=int, default=None, help="default: the task's eval.episodes")
    args = parser.parse_args()
    print("| run | return as trained | another user's history | history hidden | slates (most common: share) |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        agent = load_agent(run, device="cpu")
        layout = agent.q_network.encoder.layout
        episodes = args.episodes or agent.runtime.task.eval.episodes
        seed = agent.runtime.task.eval.seed

        def swapped_history(observations: np.ndarray, agent=agent, layout=layout) -> np.ndarray:
            swapped = observations.copy()
            swapped[:, layout.history_rows] = np.roll(observations[:, layout.history_rows], 1, axis=0)
            return agent(swapped)

        def without_history(observations: np.ndarray, agent=agent, layout=layout) -> np.ndarray:
            hidden = observations.copy()
            hidden[:, layout.history_rows, layout.PRESENT] = 0.0
            return agent(hidden)

        slates: Counter = Counter()

        def counted(observations: np.ndarray, agent=agent, slates=slates) -> np.ndarray:
            actions = agent(observations)
            slates.update(tuple(sorted(slate.tolist())) for slate in actions)
            return actions

        trained, swapped, hidden = (
            evaluate_policy(agent.runtime, policy, episodes, seed).means()["return"]
            for policy in (counted, swapped_history, without_history)
        )
        changes = f"{swapped:.2f} ({swapped - trained:+.2f}) | {hidden:.2f} ({hidden - trained:+.2f})"
        (common, count), *_ = slates.most_common(1)
        share = f"{len(slates)} ({list(common)}: {count / sum(slates.values()):.2f})"
        print(f"| {run} | {trained:.2f} | {changes} | {share} |", flush=True)


if __name__ == "__main__":
    main()
