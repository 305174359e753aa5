"""Baselines: greedy by observed affinity, the best fixed slate, and RecSim NG's own
collaborative-filtering recommender.

Random slates come from the core. The library's peer is trained by the library: its
``CollabFilteringRecommender`` inside its own interest-evolution story, optimised with its own
``interest_evolution_simulation.run_simulation`` (REINFORCE on the slate log-probability) for a
given number of simulated user-steps, then acts here exactly as it acts there, through its own
``slate_docs``.
"""

from __future__ import annotations

import itertools

import numpy as np

from attnq_recsim.options import EcosystemOptions, TokenLayout


class ObservedAffinityPolicy:
    """Estimates each user's interest as the consumed-time-weighted mean topic features of the
    consumed history, then recommends the documents nearest to it (RecSim NG's users score
    documents by negative Euclidean distance). With no history yet: a random slate."""

    def __init__(self, layout: TokenLayout, slate_size: int, seed: int) -> None:
        self.layout = layout
        self.slate_size = slate_size
        self.rng = np.random.default_rng(seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        layout = self.layout
        features = slice(layout.FEATURES, layout.quality)
        candidates = observations[:, : layout.num_docs, features]  # [N, docs, topics]
        history = observations[:, layout.history_rows]
        weights = history[..., layout.PRESENT] * np.maximum(history[..., layout.consumed_time], 0.0)  # [N, H]
        total = weights.sum(axis=1, keepdims=True)
        interest = (weights[..., None] * history[..., features]).sum(axis=1) / np.maximum(total, 1e-9)
        affinity = -np.linalg.norm(candidates - interest[:, None, :], axis=2)
        tie_break = self.rng.random(affinity.shape) * 1e-6
        no_history = total[:, 0] <= 0
        affinity[no_history] = self.rng.random((int(no_history.sum()), layout.num_docs))
        return np.argsort(-(affinity + tie_break), axis=1)[:, : self.slate_size]


# The search's users: seeds no evaluation (0...), validation (1,000,000...) or demo (500,000,000...) draws.
FIXED_SLATE_SEARCH_SEED = 2_000_000_000


class FixedSlatePolicy:
    """One slate for every user at every step: the documents that earned most as a fixed slate for
    ``users`` users (one RecSim NG batch) drawn from the baseline's own seeds, never an evaluation's.
    Each document is tried beside the k-1 documents of lowest quality (seldom chosen, so it is
    nearly tried alone); every slate of the k + ``shortlist_extra`` best is tried; then each slot of
    the best is swapped for every other document while that earns more. A recommender that learns
    one slate for everyone earns about this; what an agent earns above it is personalisation."""

    def __init__(self, options: EcosystemOptions, seed: int, users: int = 256, shortlist_extra: int = 4) -> None:
        from gymnasium.vector import AutoresetMode

        from attnq_recsim.environment import InterestEvolutionVectorEnv  # imports TensorFlow

        env = InterestEvolutionVectorEnv(options, users, AutoresetMode.DISABLED)
        k, search_seed = options.slate_size, FIXED_SLATE_SEARCH_SEED + seed

        def earned(slate: tuple[int, ...]) -> float:
            env.reset(seed=search_seed)  # the same users for every slate
            actions = np.tile(slate, (users, 1))
            return float(sum(env.step(actions)[1].mean() for _ in range(options.horizon)))

        by_quality = [int(d) for d in np.argsort(env.doc_quality, kind="stable")]
        alone = {d: earned((d, *[f for f in by_quality if f != d][: k - 1])) for d in range(options.num_docs)}
        shortlist = sorted(alone, key=lambda d: (-alone[d], d))[: k + shortlist_extra]
        self.earned = {slate: earned(slate) for slate in itertools.combinations(sorted(shortlist), k)}
        best = max(self.earned, key=lambda slate: (self.earned[slate], [-d for d in slate]))
        improved = True
        while improved:  # then each slot swapped for every other document, while the slate improves
            improved = False
            for slot, d in itertools.product(range(k), range(options.num_docs)):
                if d in best:
                    continue
                slate = tuple(sorted((*best[:slot], d, *best[slot + 1 :])))
                if slate not in self.earned:
                    self.earned[slate] = earned(slate)
                if self.earned[slate] > self.earned[best]:
                    best, improved = slate, True
        self.slate = np.array(best)
        env.close()

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return np.tile(self.slate, (len(observations), 1))


class CollabFilteringPolicy:
    """RecSim NG's ``CollabFilteringRecommender`` after the library's own training loop, choosing
    slates as it does inside the library (sampled from its scores by its own slate sampler)."""

    def __init__(
        self, options: EcosystemOptions, user_steps: int, num_users: int, learning_rate: float, seed: int
    ) -> None:
        from attnq_recsim.simulation import EcosystemConfig, TrainedCollabFiltering  # imports TensorFlow

        self.layout = TokenLayout.of(options)
        self.num_users = num_users
        config = EcosystemConfig(
            num_users=num_users,
            num_topics=options.num_topics,
            num_docs=options.num_docs,
            slate_size=options.slate_size,
            history_length=options.history_length,
            corpus_seed=options.corpus_seed,
        )
        self.recommender = TrainedCollabFiltering(config, user_steps, options.horizon, learning_rate, seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        layout = self.layout
        history = observations[:, layout.history_rows]
        present = history[..., layout.PRESENT] > 0.5
        # the library's doc ids are corpus index + 1, with 0 meaning "nothing consumed"
        doc_ids = np.where(present, history[..., layout.doc_index].astype(np.int64) + 1, 0)
        consumed = np.where(present, history[..., layout.consumed_time], 0.0)
        # the library's model has a fixed user batch: pad the last block
        slates = []
        for start in range(0, len(observations), self.num_users):
            block = slice(start, start + self.num_users)
            count = len(doc_ids[block])
            pad = ((0, self.num_users - count), (0, 0))
            slates.append(self.recommender.slates(np.pad(doc_ids[block], pad), np.pad(consumed[block], pad))[:count])
        return np.concatenate(slates)
