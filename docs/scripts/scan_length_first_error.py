"""Where a scan-length agent first goes wrong inside a repetition longer than any training output's.

With the length given (the end masked until the reference's length), the agent writes every test
pair greedily; for each pair whose reference repeats one unit over more than 22 words, the first
wrong word is placed in that run: before it, in its n-th unit, or after it. An agent that counts a
run only as far as training's runs of its unit went fails in the unit just past them. A copy agent
(``domain_options.copy_actions``) is read too: each pair's environment is stepped with its actions.

    .venv/bin/python docs/scripts/scan_length_first_error.py docs/reports/full/runs/scan-length/transformer-seed0
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from attnq.agent import load_agent
from attnq_translation.corpus import PAD_ID, longest_run, unit_run_at
from attnq_translation.environment import ObservationLayout, TextAsActionEnv
from attnq_translation.options import build_corpus
from attnq_translation.scan import length_split


def longest_run_place(words: tuple[str, ...], longest_unit: int = 3) -> tuple[int, int, int]:
    """``(start, unit, words)`` of the longest run of one unit of 1..longest_unit words repeated
    (the first, shortest unit on ties)."""
    best = (0, 1, 0)
    for start in range(len(words)):
        for unit in range(1, min(longest_unit, len(words) - start) + 1):
            covered = unit_run_at(words, start, unit)
            if covered > best[2]:
                best = (start, unit, covered)
    return best


def agent_and_corpus(description: str, copies: bool = False):
    """The agent of the run folder named on the command line (on CPU) and its task's corpus; a run
    with copy actions is refused unless ``copies`` (the observations here have one word per action)."""
    parser = argparse.ArgumentParser(description=description.split("\n")[0])
    parser.add_argument("run", help="a scan-length (or scan-length-oracle) run folder")
    run = parser.parse_args().run
    agent = load_agent(run, device="cpu")
    if agent.runtime.context.options.copy_actions and not copies:
        parser.error(
            f"{run} was trained with domain_options.copy_actions; this script reads one word per action "
            "(docs/scripts/scan_length_copy_use.py reads a copy agent's actions)"
        )
    return agent, build_corpus(agent.runtime.context.options)


def layout(corpus) -> ObservationLayout:
    """How the environment lays out ``corpus``'s observations for an agent that writes one word per action."""
    return ObservationLayout(corpus.max_source_length, corpus.max_output_length)


def observation_row(corpus, source, written, length: int) -> np.ndarray:
    """One observation: the command's ids, the written words' ids and the given length (the end
    masked until then)."""
    return layout(corpus).row(source, written, length)


def greedy_outputs(agent, corpus, pairs, oracle_length: bool) -> tuple[list[list[int]], Counter]:
    """The test pairs ``pairs`` written greedily, each by stepping its own environment (with the run's
    copy actions), all at once: the word ids each output holds, and how often each action was taken."""
    copies = agent.runtime.context.options.copy_actions
    envs = [TextAsActionEnv(corpus, part="test", oracle_length=oracle_length, copy_actions=copies) for _ in pairs]
    observations = np.stack([env.reset(seed=pair)[0] for env, pair in zip(envs, pairs, strict=True)])
    running = np.ones(len(envs), dtype=bool)
    taken: Counter[int] = Counter()
    while running.any():
        rows = np.flatnonzero(running)
        for row, action in zip(rows, np.asarray(agent(observations[rows])), strict=True):
            taken[int(action)] += 1
            observations[row], _, terminated, truncated, _ = envs[row].step(int(action))
            running[row] = not (terminated or truncated)
    prefixes = envs[0].layout.split(observations)[1].astype(np.int64)
    return [[int(i) for i in prefix if i != PAD_ID] for prefix in prefixes], taken


def main() -> None:
    agent, corpus = agent_and_corpus(__doc__, copies=True)
    _, references = corpus.word_ids("test")
    written, _ = greedy_outputs(agent, corpus, range(len(references)), oracle_length=True)
    train, test = length_split()
    train_longest = max(longest_run(pair.target) for pair in train)
    where, exact = Counter(), 0
    for row, (pair, reference) in enumerate(zip(test, references, strict=True)):
        # a copy agent's output may stop short of the reference (cut off) or pass it (a copy past its end)
        compared = np.full((2, max(len(reference), len(written[row]))), PAD_ID)
        compared[0, : len(reference)], compared[1, : len(written[row])] = reference, written[row]
        wrong = np.flatnonzero(compared[0] != compared[1])
        exact += not len(wrong)
        start, unit, words = longest_run_place(pair.target)
        if words <= train_longest:
            continue
        if not len(wrong):
            where["right"] += 1
        elif wrong[0] < start:
            where["before the run"] += 1
        elif wrong[0] >= start + words:
            where["after the run"] += 1
        else:
            where[f"unit of {unit}, number {(wrong[0] - start) // unit + 1}"] += 1
    print(f"exact match with the length given: {exact / len(test):.3f}")
    total = sum(where.values())
    print(f"first wrong word of the {total} outputs with a run past {train_longest} words (most first):")
    for name, count in where.most_common():
        print(f"  {name}: {count} ({count / total:.3f})")


if __name__ == "__main__":
    main()
