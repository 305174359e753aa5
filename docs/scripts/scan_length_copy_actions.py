"""How long would scan-length's outputs be if an action could copy the last k written words?

With actions that write one word or append a copy of the last k words written (k = 1..K), each
output has a shortest action sequence. This prints how long those are for the training and test
outputs of the length split. Test outputs then need more actions than any training output only where
the printed count says so, whereas every test output has more words than any training output.

    .venv/bin/python docs/scripts/scan_length_copy_actions.py --longest-copy 8
"""

from __future__ import annotations

import argparse
from collections import Counter

from attnq_translation.scan import length_split


def fewest_actions(words: tuple[str, ...], longest_copy: int) -> int:
    """The fewest actions that write ``words``: one word each, or a copy of the last k <= longest_copy."""
    fewest = [0] + [len(words)] * len(words)
    for end in range(1, len(words) + 1):
        fewest[end] = fewest[end - 1] + 1
        for k in range(1, min(longest_copy, end // 2) + 1):
            if words[end - k : end] == words[end - 2 * k : end - k]:
                fewest[end] = min(fewest[end], fewest[end - k] + 1)
    return fewest[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--longest-copy", type=int, default=8, help="the largest k a copy action takes")
    longest_copy = parser.parse_args().longest_copy
    train, test = length_split()
    train_actions = [fewest_actions(pair.target, longest_copy) for pair in train]
    test_actions = [fewest_actions(pair.target, longest_copy) for pair in test]
    longest_train = max(train_actions)
    print(f"copies of up to {longest_copy} words")
    most_words = max(len(pair.target) for pair in train)
    print(f"  train: {len(train):,} outputs of {most_words} words at most, {longest_train} actions at most")
    words = [len(pair.target) for pair in test]
    print(
        f"  test: {len(test):,} outputs of {min(words)}-{max(words)} words, "
        f"{min(test_actions)}-{max(test_actions)} actions"
    )
    beyond = sum(actions > longest_train for actions in test_actions)
    print(f"  test outputs needing more actions than any training output: {beyond:,} of {len(test):,}")
    counts = sorted(Counter(test_actions).items())
    print("  test outputs by actions: " + ", ".join(f"{actions}: {n:,}" for actions, n in counts))


if __name__ == "__main__":
    main()
