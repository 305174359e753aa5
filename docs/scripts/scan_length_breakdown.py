"""Where a scan-length agent fails: exact match split by whether the reference repeats one unit longer
than any training output does, and by reference length, with and without the length given.

A "long run" is one unit of 1-3 actions repeated over more words in a row than the longest such run
in any training output (22), e.g. "walk around left thrice" (24 words). Episode i of an evaluation
from seed 0 writes test pair i.

    .venv/bin/python docs/scripts/scan_length_breakdown.py docs/reports/full/runs/scan-length/transformer-seed0
"""

from __future__ import annotations

import argparse

import numpy as np

from attnq.agent import load_agent
from attnq.evaluation import evaluate_policy
from attnq_translation.corpus import longest_run, run_at
from attnq_translation.scan import length_split

LENGTH_BINS = ((24, 28), (29, 33), (34, 40), (41, 48))


def final_run(words: tuple[str, ...]) -> int:
    """The run that ends the output (the last phrase's): read backwards, it starts at the first word."""
    return run_at(words[::-1], 0)


def exact_per_pair(agent, pairs: int, env_kwargs: dict) -> np.ndarray:
    """Per test pair, in order: 1.0 where the agent writes it exactly, else 0.0."""
    episodes = evaluate_policy(agent.runtime, agent, pairs, 0, env_kwargs=env_kwargs).episodes
    return np.array([episode["exact_match"] for episode in episodes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a scan-length run folder")
    args = parser.parse_args()
    train, test = length_split()
    train_longest = max(longest_run(pair.target) for pair in train)
    long_run = np.array([longest_run(pair.target) > train_longest for pair in test])
    # with the length given, a long run that ends the output needs no count: the end is where it stops
    long_run_last = np.array([final_run(pair.target) > train_longest for pair in test])
    length = np.array([len(pair.target) for pair in test])
    print(
        f"longest run in a training output: {train_longest}; test outputs with a longer one: {long_run.sum()} "
        f"of {len(test)}"
    )
    agent = load_agent(args.run, device="cpu")
    for name, env_kwargs in (("as written", {}), ("length given", {"oracle_length": True})):
        exact = exact_per_pair(agent, len(test), env_kwargs)
        print(
            f"{name}: exact match {exact.mean():.3f}; with a longer run {exact[long_run].mean():.3f}, "
            f"without {exact[~long_run].mean():.3f}; the long run ending the output ({long_run_last.sum()}) "
            f"{exact[long_run_last].mean():.3f}, inside it ({(long_run & ~long_run_last).sum()}) "
            f"{exact[long_run & ~long_run_last].mean():.3f}"
        )
        for low, high in LENGTH_BINS:
            chosen = (length >= low) & (length <= high)
            print(f"  reference {low}-{high} words ({chosen.sum()} pairs): exact match {exact[chosen].mean():.3f}")


if __name__ == "__main__":
    main()
