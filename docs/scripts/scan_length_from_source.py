"""Can the length of a SCAN output be predicted from the command alone, on the length split?

A stop decision apart from the words could come from the source: predict the output's length from
the command, then write until that length. This script fits a small Transformer encoder (the task's
sizes: width 64, 2 layers, 4 heads, feed-forward 128, learned positions, a [CLS] token) by
regression on the training pairs' output lengths (16,990 pairs, outputs of 1-22 words), or on their
logarithm, and scores the rounded prediction on the test pairs (24-48 words).

Given run folders of agents trained without the end decision (``env.kwargs.oracle_length: true``),
it also prints what such an agent would score writing until the predicted length: its words do not
depend on the length (the length only masks the end), so a sentence comes out right exactly when
the predicted length is the reference's and the agent composes it right with the length given.

    .venv/bin/python docs/scripts/scan_length_from_source.py [RUN ...] [--seeds 0 1 2] [--targets length log]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scan_length_breakdown import exact_per_pair  # a sibling script: docs/scripts is on the path when run

from attnq.agent import load_agent
from attnq_translation.corpus import Vocabulary
from attnq_translation.scan import LENGTH_SPLIT_MAX_TRAIN_OUTPUT, length_split


class LengthRegressor(torch.nn.Module):
    """A [CLS] token and the command's words through a Transformer encoder; a linear read of [CLS]."""

    def __init__(self, words: int, max_length: int, d_model: int = 64) -> None:
        super().__init__()
        self.word = torch.nn.Embedding(words + 1, d_model, padding_idx=0)  # id 0 pads
        self.position = torch.nn.Embedding(max_length + 1, d_model)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(d_model, 4, 128, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.read = torch.nn.Linear(d_model, 1)

    def forward(self, ids_BL: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids_BL.shape[1] + 1)
        tokens = torch.cat([self.cls.expand(len(ids_BL), -1, -1), self.word(ids_BL)], 1) + self.position(positions)
        padding = torch.cat([torch.zeros(len(ids_BL), 1, dtype=torch.bool), ids_BL == 0], 1)
        return self.read(self.encoder(tokens, src_key_padding_mask=padding)[:, 0]).squeeze(1)


def encode(pairs, vocabulary: Vocabulary, width: int) -> torch.Tensor:
    ids = torch.zeros(len(pairs), width, dtype=torch.long)
    for row, pair in enumerate(pairs):
        ids[row, : len(pair.source)] = torch.tensor(vocabulary.source_ids(pair.source))
    return ids


def fit(train_ids, train_lengths, words: int, log: bool, seed: int, epochs: int) -> LengthRegressor:
    torch.manual_seed(seed)
    model = LengthRegressor(words, train_ids.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    target = torch.log(train_lengths) if log else train_lengths
    for _ in range(epochs):
        for rows in torch.randperm(len(train_ids)).split(128):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(train_ids[rows]), target[rows]).backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict(model: LengthRegressor, ids: torch.Tensor, log: bool) -> np.ndarray:
    out = model(ids)
    return torch.round(torch.exp(out) if log else out).long().numpy()


def composed_with_length_given(run: str, pairs: int) -> np.ndarray:
    """Per test pair: did the agent write it right with the reference's length given."""
    return exact_per_pair(load_agent(run, device="cpu"), pairs, {"oracle_length": True}) == 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", help="scan-length runs trained with env.kwargs.oracle_length=true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--targets", nargs="+", choices=["length", "log"], default=["length", "log"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = length_split()
    # sorted, not first-seen: the word ids (and so each word's initial embedding) of the note's figures
    vocabulary = Vocabulary(tuple(sorted({w for pair in train + test for w in pair.source})), ())
    width = max(len(pair.source) for pair in train + test)
    train_ids, test_ids = encode(train, vocabulary, width), encode(test, vocabulary, width)
    train_lengths = torch.tensor([len(pair.target) for pair in train], dtype=torch.float32)
    test_lengths = np.array([len(pair.target) for pair in test])
    composed = {run: composed_with_length_given(run, len(test)) for run in args.runs}
    for log in [target == "log" for target in args.targets]:
        for seed in args.seeds:
            model = fit(train_ids, train_lengths, len(vocabulary.source_words), log, seed, args.epochs)
            on_train = (predict(model, train_ids, log) == train_lengths.long().numpy()).mean()
            guess = predict(model, test_ids, log)
            right = guess == test_lengths
            print(
                f"{'log length' if log else 'length'}, seed {seed}: exact length on training pairs {on_train:.3f}, "
                f"on test pairs {right.mean():.3f}; predicted past {LENGTH_SPLIT_MAX_TRAIN_OUTPUT} words "
                f"{(guess > LENGTH_SPLIT_MAX_TRAIN_OUTPUT).mean():.3f}; mean absolute error "
                f"{np.abs(guess - test_lengths).mean():.1f} words"
            )
            for run, ok in composed.items():
                both = (ok & right).mean()
                print(f"  {run}: exact match with the length given {ok.mean():.3f}, with this length {both:.3f}")


if __name__ == "__main__":
    main()
