"""Where a scan-length agent reads a verb's "around thrice" from, and whether it writes the units past eight.

For each checkpoint and network given, the reference of "V around left thrice and P" is written word
by word (V a verb, P a phrase that starts with a right turn; the counterfactual script's 20
commands), and at the start of units 7..13 of the run the script prints the share of commands where
the agent continues the run (writes I_TURN_LEFT: right through unit 12, wrong at 13) and the attention,
mean over heads and commands, on the two ways the multiplier M can reach the query: the query's own
attention on M in each layer, and M through "around" (around's first-layer attention on M, then the
query's last-layer attention on around). Training never shows a verb's ninth unit.

    .venv/bin/python docs/scripts/scan_length_count_routes.py RUN/checkpoints/last.ckpt [--networks online averaged]
"""

from __future__ import annotations

import argparse
from itertools import product

import numpy as np
import torch
from scan_length_counterfactual import FOLLOWING, VERBS
from scan_length_first_error import observation_row

from attnq.agent import load_agent
from attnq_translation.options import build_corpus
from attnq_translation.scan import interpret

UNITS = range(7, 14)
COLUMNS = ("continues", "query->M L1", "query->M L2", "around->M L1", "query->around L2")


def routes(agent, row: np.ndarray) -> list[float]:
    """The attention on M's routes for one observation (mean over heads)."""
    observations_BX = torch.as_tensor(row[None].astype(np.float32))
    with torch.no_grad():
        output = agent.q_network(observations_BX, return_attention=True)
        query = agent.q_network.encoder(observations_BX).query_index
    labels = agent.q_network.encoder.token_labels(row)
    m, around = (output.cls_tokens + labels.index(label) for label in ("4:thrice", "2:around"))
    first, last = output.attention[0][0].mean(0), output.attention[-1][0].mean(0)
    return [float(first[query, m]), float(last[query, m]), float(first[around, m]), float(last[query, around])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="scan-length checkpoints or run folders")
    parser.add_argument("--networks", nargs="+", default=["exported"], help="online, averaged or exported")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path, network in product(args.checkpoints, args.networks):
        agent = load_agent(path, device="cpu", network=network)
        corpus = build_corpus(agent.runtime.context.options)
        vocabulary = corpus.vocabulary
        left = vocabulary.actions_for(["I_TURN_LEFT"])[0]
        rows = {unit: [] for unit in UNITS}
        for verb, following in product(VERBS, FOLLOWING):
            command = f"{verb} around left thrice and {following}".split()
            reference = interpret(" ".join(command))
            source = vocabulary.source_ids(command)
            for unit in UNITS:
                written = vocabulary.actions_for(reference[: 2 * (unit - 1)])
                row = observation_row(corpus, source, written, len(reference))
                continues = float(np.asarray(agent(row[None]))[0] == left)
                rows[unit].append([continues, *routes(agent, row)])
        print(f"{path} ({network}), mean of {len(VERBS) * len(FOLLOWING)} commands")
        print("unit | " + " | ".join(COLUMNS))
        for unit in UNITS:
            print(f"{unit} | " + " | ".join(f"{v:.2f}" for v in np.mean(rows[unit], axis=0)), flush=True)


if __name__ == "__main__":
    main()
