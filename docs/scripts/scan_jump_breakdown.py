"""Where a scan-jump agent fails: how often it writes I_JUMP where the reference has it, what it writes
there instead, and how many outputs are right except for the verb standing where jump belongs.

Training holds "jump" only alone, so this separates composing (the rest of the sentence) from
using the new primitive. Episode i of an evaluation from seed 0 writes test pair i.

    .venv/bin/python docs/scripts/scan_jump_breakdown.py docs/reports/full/runs/scan-jump/transformer-seed0 --pairs 500
"""

from __future__ import annotations

import argparse
from collections import Counter

from attnq.agent import load_agent

JUMP, OTHER_VERBS = "I_JUMP", ("I_WALK", "I_RUN", "I_LOOK")


def written(agent, env, pair: int) -> tuple[list[str], list[str]]:
    """The agent's greedy output for test pair ``pair`` and the reference, as action words."""
    observation, _ = env.reset(seed=pair)
    done = False
    while not done:
        observation, _, terminated, truncated, _ = env.step(int(agent(observation[None])[0]))
        done = terminated or truncated
    text_env, words = env.unwrapped, env.unwrapped.corpus.vocabulary.target_words
    return [words[a - 1] for a in text_env._output], [words[a - 1] for a in text_env.references[text_env._pair]]


def right_but_the_verb(output: list[str], reference: list[str]) -> bool:
    """The output equals the reference once one other verb, wherever it stands for jump, is read as jump."""
    if len(output) != len(reference):
        return False
    read = ([JUMP if (o == verb and r == JUMP) else o for o, r in zip(output, reference)] for verb in OTHER_VERBS)
    return any(candidate == reference for candidate in read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a scan-jump run folder")
    parser.add_argument("--pairs", type=int, default=500, help="the first N test pairs")
    args = parser.parse_args()
    agent = load_agent(args.run, device="cpu")
    env = agent.runtime.make_env(evaluation=True)
    exact = verb_only = jumps_wanted = jumps_written = 0
    instead: Counter[str] = Counter()
    for pair in range(args.pairs):
        output, reference = written(agent, env, pair)
        exact += output == reference
        verb_only += right_but_the_verb(output, reference)
        jumps_wanted += reference.count(JUMP)
        jumps_written += sum(o == r == JUMP for o, r in zip(output, reference))
        instead.update(o for o, r in zip(output, reference) if r == JUMP and o != JUMP)
    print(f"{args.pairs} test pairs: exact match {exact / args.pairs:.3f}")
    print(f"right but for the verb where jump belongs: {verb_only / args.pairs:.3f}")
    print(f"I_JUMP written where the reference has it: {jumps_written} of {jumps_wanted}")
    print(f"written there instead: {dict(instead.most_common(4))}")


if __name__ == "__main__":
    main()
