"""Which actions a copy agent (``domain_options.copy_actions``) takes: words, each COPY k, AGAIN, the end.

Greedy, as written (the length not given), on every tenth test pair, all episodes stepped together.

    .venv/bin/python docs/scripts/scan_length_copy_use.py RUN
"""

from __future__ import annotations

import sys

from scan_length_first_error import agent_and_corpus, greedy_outputs

from attnq_translation.environment import END_ACTION, copy_action_names

EVERY = 10


def main() -> None:
    agent, corpus = agent_and_corpus(__doc__, copies=True)
    names = agent.runtime.action_names()
    copies = agent.runtime.context.options.copy_actions
    if not copies:
        print("error: this run has no copy actions (domain_options.copy_actions is 0)", file=sys.stderr)
        raise SystemExit(2)
    pairs = range(0, len(corpus.test), EVERY)
    _, taken = greedy_outputs(agent, corpus, pairs, oracle_length=False)
    total = sum(taken.values())
    first_copy = len(names) - len(copy_action_names(copies))  # the copy actions come last
    words = sum(n for action, n in taken.items() if END_ACTION < action < first_copy)
    ends = taken[END_ACTION]
    print(f"{len(pairs)} test pairs, {total:,} actions: share of words {words / total:.3f}, the end {ends / total:.3f}")
    for action in range(first_copy, first_copy + copies + 1):
        if taken[action]:
            print(f"  {names[action]}: {taken[action] / total:.3f}")


if __name__ == "__main__":
    main()
