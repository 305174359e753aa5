"""How a scan-length agent's test scores move over training: each checkpoint given, its online and
averaged networks (where the run averaged its weights), scored on every k-th test pair.

For each checkpoint and network: exact match as written and with the length given (the end masked
until the reference's length), the latter split by whether the reference repeats one unit over more
words than any training output does. It reads the test set at every checkpoint, so it describes a
run; it must not pick one. Keep the checkpoints by hard-linking ``checkpoints/last.ckpt`` each time
it is replaced (every ``trainer.checkpoint_every_env_steps``).

    .venv/bin/python docs/scripts/scan_length_trajectory.py SNAPSHOT.ckpt ... --every 5

The test pairs come in an order with a period of 4: a stride of 4 or 8 holds 71 % of pairs with a
long run instead of 82 %; strides 3, 5, 7 and 9 keep the set's share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from scan_length_first_error import greedy_outputs

from attnq.agent import load_agent
from attnq.checkpoints import NETWORK_PREFIXES, load_checkpoint_file
from attnq_translation.corpus import longest_run
from attnq_translation.options import build_corpus
from attnq_translation.scan import length_split


def networks_in(checkpoint_path: str) -> tuple[int, list[str]]:
    """The checkpoint's env steps and which of the online and averaged networks it holds."""
    weights = load_checkpoint_file(Path(checkpoint_path))
    held = [
        name
        for name in ("online", "averaged")
        if any(k.startswith(NETWORK_PREFIXES[name]) for k in weights["state_dict"])
    ]
    return int(weights.get("attnq", {}).get("env_steps", 0)), held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="scan-length checkpoint files, in any order")
    parser.add_argument("--every", type=int, default=1, help="score test pairs 0, k, 2k, ... (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = length_split()
    train_longest = max(longest_run(pair.target) for pair in train)
    pairs = range(0, len(test), args.every)
    long_run = [longest_run(test[i].target) > train_longest for i in pairs]
    print(f"{len(pairs)} test pairs, {sum(long_run)} with a run past {train_longest} words")
    print("checkpoint | env steps | network | exact match | with the length given | long runs | the others")
    rows = sorted((*networks_in(path), path) for path in args.checkpoints)
    for env_steps, held, path in rows:
        for network in held:
            agent = load_agent(path, device="cpu", network=network)
            corpus = build_corpus(agent.runtime.context.options)
            _, references = corpus.word_ids("test")
            scores = []
            for oracle_length in (False, True):
                written, _ = greedy_outputs(agent, corpus, pairs, oracle_length)
                scores.append([list(written[n]) == list(references[i]) for n, i in enumerate(pairs)])
            plain, given = scores
            long_right = sum(r for r, is_long in zip(given, long_run, strict=True) if is_long)
            other_right = sum(r for r, is_long in zip(given, long_run, strict=True) if not is_long)
            print(
                f"{Path(path).name} | {env_steps} | {network} | "
                f"{sum(plain) / len(pairs):.3f} | {sum(given) / len(pairs):.3f} | "
                f"{long_right / max(sum(long_run), 1):.3f} | {other_right / max(len(pairs) - sum(long_run), 1):.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
