"""Can a translation agent trained without the end decision learn where to stop from what it computes?

An agent trained with ``env.kwargs.oracle_length: true`` never chooses the end (Newman et al. 2020's
-EOS training): the env ends each sentence at the reference's length. This script freezes that
agent's network and fits a stop probe (logistic regression, or with ``--hidden`` an MLP) on the
features its head reads, at every prefix of every training reference: 1 where the prefix is the
whole reference, else 0. It then translates the test pairs greedily, writing the best word until
the probe says stop (p > 0.5), and prints exact match beside the exact match with the length given.
Training outputs of the length split end by word 22, test outputs at 24-48, so the probe must
recognise a finished sentence at lengths it never saw end.

    .venv/bin/python docs/scripts/scan_stop_probe.py RUN [RUN ...] [--hidden 256]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from attnq.agent import load_agent
from attnq_translation.environment import END_ACTION

BATCH = 4096


def observations(env, pair_indices: np.ndarray, prefixes: list[list[int]]) -> np.ndarray:
    """The env's observations (no length given) of these pairs with these prefixes written."""
    return np.stack([env.layout.row(env.source_ids[pair], prefix) for pair, prefix in zip(pair_indices, prefixes)])


@torch.no_grad()
def features_and_q(network, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """What the head reads ``[B, W]`` and the Q-values ``[B, A]``, in batches."""
    read: list[torch.Tensor] = []
    hook = network.head.register_forward_pre_hook(lambda module, inputs: read.append(inputs[0]))
    q_values = [network(torch.as_tensor(obs[i : i + BATCH])).q_values_BA for i in range(0, len(obs), BATCH)]
    hook.remove()
    return torch.cat(read), torch.cat(q_values)


class Probe(torch.nn.Module):
    """Stop logit from the head's input: standardised, then linear or an MLP of two hidden layers."""

    def __init__(self, features_NW: torch.Tensor, hidden: int) -> None:
        super().__init__()
        width = features_NW.shape[1]
        self.register_buffer("mean", features_NW.mean(0))
        self.register_buffer("std", features_NW.std(0) + 1e-6)
        layers = [torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU()]
        self.layers = torch.nn.Sequential(*(layers if hidden else []), torch.nn.Linear(hidden or width, 1))

    def forward(self, features_BW: torch.Tensor) -> torch.Tensor:
        return self.layers((features_BW - self.mean) / self.std).squeeze(1)


def fit_probe(features_NW: torch.Tensor, stop_N: torch.Tensor, hidden: int, steps: int = 3000) -> Probe:
    """Cross-entropy with the two classes weighted equally (a sentence has one stop, many words)."""
    torch.manual_seed(0)
    probe = Probe(features_NW, hidden)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-3 if hidden else 1e-2)
    positive = stop_N.mean()
    weights_N = torch.where(stop_N > 0, 0.5 / positive, 0.5 / (1 - positive))
    for _ in range(steps):
        rows = torch.randint(0, len(stop_N), (BATCH,))
        optimizer.zero_grad()
        logits = probe(features_NW[rows])
        torch.nn.functional.binary_cross_entropy_with_logits(logits, stop_N[rows], weight=weights_N[rows]).backward()
        optimizer.step()
    return probe.eval()


def prefix_examples(network, env) -> tuple[torch.Tensor, torch.Tensor]:
    """Features at every prefix (0..n words) of every reference of the env's part, labelled 1 at n."""
    pairs, prefixes, stops = [], [], []
    for pair, reference in enumerate(env.references):
        for written in range(len(reference) + 1):
            pairs.append(pair)
            prefixes.append(reference[:written])
            stops.append(float(written == len(reference)))
    features, _ = features_and_q(network, observations(env, np.array(pairs), prefixes))
    return features, torch.tensor(stops)


@torch.no_grad()
def translate(network, env, probe: Probe | None) -> list[tuple[list[int], bool]]:
    """Greedy outputs of every pair: the best word each step, until the probe stops (``None``: at the
    reference's length). Returns (output, ended) per pair."""
    count = len(env.references)
    outputs: list[list[int]] = [[] for _ in range(count)]
    ended = [False] * count
    for _ in range(env.output_length + 1):
        active = [i for i in range(count) if not ended[i]]
        if not active:
            break
        features, q_values = features_and_q(network, observations(env, np.array(active), [outputs[i] for i in active]))
        q_values[:, END_ACTION] = -torch.inf
        words = q_values.argmax(dim=1).tolist()
        if probe is None:
            stop = [len(outputs[i]) == len(env.references[i]) for i in active]
        else:
            stop = (probe(features) > 0).tolist()
        for i, word, stops in zip(active, words, stop):
            if stops:
                ended[i] = True
            elif len(outputs[i]) < env.output_length:
                outputs[i].append(word)
    return list(zip(outputs, ended))


def exact_match(results: list[tuple[list[int], bool]], references: list[list[int]]) -> float:
    return float(np.mean([ended and output == ref for (output, ended), ref in zip(results, references)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="translation run folders trained with env.kwargs.oracle_length: true")
    parser.add_argument("--hidden", type=int, default=0, help="the probe's hidden width (0: logistic regression)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        "| run | probe | exact match, probe stops | with the length given | median words written | "
        "false stops inside test references (teacher-forced) |"
    )
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        agent = load_agent(run, device="cpu")
        network = agent.q_network.eval()
        train_env = agent.runtime.make_env(extra={"part": "train", "oracle_length": False}).unwrapped
        test_env = agent.runtime.make_env(evaluation=True, extra={"oracle_length": False}).unwrapped
        probe = fit_probe(*prefix_examples(network, train_env), args.hidden)
        with torch.no_grad():
            test_features, test_stops = prefix_examples(network, test_env)
            false_stops = (probe(test_features)[test_stops == 0] > 0).float().mean()
        with_probe = translate(network, test_env, probe)
        given = translate(network, test_env, None)
        print(
            f"| {run} | {f'MLP {args.hidden}' if args.hidden else 'linear'} "
            f"| {exact_match(with_probe, test_env.references):.3f} | {exact_match(given, test_env.references):.3f} "
            f"| {np.median([len(output) for output, _ in with_probe]):.0f} | {false_stops:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
