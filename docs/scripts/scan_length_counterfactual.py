"""Does a scan-length agent end an "around" repetition by the command's multiplier or by what it wrote?

At the ninth unit of "V around left M and P" (M twice or thrice; P a phrase that starts with a right
turn), the agent (length given, greedy) sees the command with V a verb or "turn", and eight units of
the written run as a verb's (I_TURN_LEFT I_VERB) or as a turn's (I_TURN_LEFT); every combination,
whether or not the written run matches the command. It continues the run if it writes I_TURN_LEFT
and moves on to P if it writes I_TURN_RIGHT. Training shows the ninth unit for "turn around left
thrice" (continue) and for verbs' "around left twice" (move on), never for a verb's "thrice".

    .venv/bin/python docs/scripts/scan_length_counterfactual.py docs/reports/full/runs/scan-length/transformer-seed0
"""

from __future__ import annotations

from itertools import product

import numpy as np
from scan_length_first_error import agent_and_corpus, observation_row

from attnq_translation.scan import interpret

VERBS = ("walk", "look", "run", "jump")
FOLLOWING = ("walk right", "look opposite right", "jump right twice", "run around right", "turn right")
UNITS_WRITTEN = 8  # "around twice": the ninth unit is where a verb's "thrice" has never been trained


def multiplier_attention(agent, row: np.ndarray, multiplier: str) -> float:
    """The query's last-layer attention (mean over heads) on the command's fourth word, M."""
    weights, cls_tokens = agent.query_attention(row)
    labels = agent.q_network.encoder.token_labels(row)
    return float(weights[cls_tokens + labels.index(f"4:{multiplier}")])


def main() -> None:
    agent, corpus = agent_and_corpus(__doc__)
    vocabulary = corpus.vocabulary
    left, right = vocabulary.actions_for(["I_TURN_LEFT", "I_TURN_RIGHT"])
    cells, rows = [], []
    for multiplier, command_verb, written_as_verb in product(("twice", "thrice"), (True, False), (True, False)):
        for verb, following in product(VERBS, FOLLOWING):
            command = f"{verb if command_verb else 'turn'} around left {multiplier} and {following}".split()
            unit = ["I_TURN_LEFT", f"I_{verb.upper()}"] if written_as_verb else ["I_TURN_LEFT"]
            length = len(interpret(" ".join(command)))  # the end stays masked either way
            written = vocabulary.actions_for(unit * UNITS_WRITTEN)
            rows.append(observation_row(corpus, vocabulary.source_ids(command), written, length))
            cells.append((multiplier, command_verb, written_as_verb))
    written = np.asarray(agent(np.stack(rows)))
    on_multiplier = [multiplier_attention(agent, row, cell[0]) for row, cell in zip(rows, cells, strict=True)]
    print(
        f"after {UNITS_WRITTEN} units of 'V around left M and P': continues / moves on / other, of each cell; "
        "the query's last-layer attention on M"
    )
    for cell in dict.fromkeys(cells):
        members = [i for i, c in enumerate(cells) if c == cell]
        words = written[members]
        multiplier, command_verb, written_as_verb = cell
        print(
            f"  M={multiplier:6s} command V={'a verb' if command_verb else 'turn':6s} "
            f"written as {'a verb' if written_as_verb else 'turn':6s}: "
            f"{np.mean(words == left):.2f} / {np.mean(words == right):.2f} / "
            f"{np.mean((words != left) & (words != right)):.2f} of {len(words)}; "
            f"attention on M {np.mean([on_multiplier[i] for i in members]):.3f}"
        )


if __name__ == "__main__":
    main()
