"""How far a scan-length agent carries a repetition longer than any training output's, word by word.

Each test output whose longest run of one unit (1-3 actions) is longer than any training output's
(e.g. "jump around left thrice": LTURN JUMP twelve times, 24 words) is given its reference words up
to one word of that run; the agent (length given, greedy) writes the next. The accuracy of that word
is printed per unit of the run, split by whether the run opens the output or follows another
phrase's words, with the most common mistakes in the first unit where the accuracy falls.

    .venv/bin/python docs/scripts/scan_length_run_accuracy.py docs/reports/full/runs/scan-length/transformer-seed0
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
from scan_length_first_error import agent_and_corpus, longest_run_place, observation_row

from attnq_translation.corpus import longest_run
from attnq_translation.scan import length_split

BATCH = 512
MISTAKES = 3
FALLS_BELOW = 0.9  # mistakes are listed for the first unit written less often right than this


def main() -> None:
    agent, corpus = agent_and_corpus(__doc__)
    names = agent.runtime.action_names()
    sources, references = corpus.word_ids("test")
    train, test = length_split()
    train_longest = max(longest_run(pair.target) for pair in train)
    observations, keys, wanted, after = [], [], [], []
    for pair, source, reference in zip(test, sources, references, strict=True):
        start, unit, words = longest_run_place(pair.target)
        if words <= train_longest:
            continue
        places = range(start, start + words)
        observations += [observation_row(corpus, source, reference[:place], len(reference)) for place in places]
        keys += [(unit, (place - start) // unit + 1, start == 0) for place in places]
        wanted += [reference[place] for place in places]
        # the word after the run, asked for at each unit's first word: writing it is moving on
        after += [
            reference[start + words] if start + words < len(reference) and (place - start) % unit == 0 else -1
            for place in places
        ]
    stacked = np.stack(observations)
    written = np.concatenate([np.asarray(agent(stacked[i : i + BATCH])) for i in range(0, len(stacked), BATCH)])
    right, moves_on, mistakes = defaultdict(list), defaultdict(list), defaultdict(Counter)
    for key, want, word, following in zip(keys, wanted, written, after, strict=True):
        right[key].append(word == want)
        if following >= 0 and following != want:
            moves_on[key].append(word == following)
        if word != want:
            mistakes[key][f"{names[want]}->{names[word]}"] += 1
    print(f"test outputs with a run longer than any training output's ({train_longest} words)")
    for unit in sorted({key[0] for key in keys}):
        print(f"unit of {unit} word(s): accuracy of the next word in unit n (n = 1, 2, ...)")
        for opens in (True, False):
            numbers = sorted({key[1] for key in keys if key[0] == unit and key[2] == opens})
            if not numbers:
                continue
            outputs = sum(1 for key in keys if key == (unit, 1, opens)) // unit
            cells = " ".join(f"{n}:{np.mean(right[(unit, n, opens)]):.2f}" for n in numbers)
            print(f"  run {'opens the output' if opens else 'follows a phrase'} ({outputs} outputs): {cells}")
            falls = [n for n in numbers if np.mean(right[(unit, n, opens)]) < FALLS_BELOW]
            if falls:
                common = mistakes[(unit, falls[0], opens)].most_common(MISTAKES)
                print(f"    mistakes in unit {falls[0]}: " + ", ".join(f"{name} {count}" for name, count in common))
                moved = moves_on[(unit, falls[0], opens)]
                if moved:
                    print(
                        f"    its first word, where the word after the run differs: the word after the run "
                        f"{np.mean(moved):.2f} of {len(moved)}"
                    )


if __name__ == "__main__":
    main()
