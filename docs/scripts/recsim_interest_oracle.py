"""How much room recsim-interest leaves for personalisation: what recommenders that know RecSim NG's
user model earn above one slate for everyone (the ``fixed_slate`` baseline), on the task's
evaluation users.

The model: a user picks a document of the slate or nothing by a multinomial logit over
``2 - |interest - features|`` (nothing: logit 0) and consumes ``length * sigmoid(-quality)``;
consuming moves the interest ``0.1 * quality`` of the way to the document, and every step squashes
it (softly, at +-20). Both recommenders below take, at each step, the slate of the highest expected
consumed time for that step over all ``C(num_docs, k)`` slates; they are myopic (they ignore where
the interest moves next), so they are references, not bounds.

- interest oracle: knows each user's hidden interest (from the previous response, as the simulator
  updates it); its first slate, before any response, is the fixed slate.
- interest filter: knows the model, its prior (interest ~ N(0, I)) and every slate shown and
  choice made (also the steps where nothing was consumed, which the agent's history leaves out),
  not the interest: a particle posterior per user. Also with its slates kept to documents of
  non-negative quality (the "trashy" ones pay more now and drive the interest away).

Also printed, as a check of the model: the oracle's expected and realised reward per step, and the
largest error of its interest prediction.

    .venv/bin/python docs/scripts/recsim_interest_oracle.py --slate 38 47
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from gymnasium.vector import AutoresetMode

from attnq.config import load_task
from attnq.runtime import prepare_task
from attnq_recsim.environment import InterestEvolutionVectorEnv

# RecSim NG 0.1.2's InterestEvolutionUser defaults (the ecosystem passes none of its own)
INTEREST_STEP = 0.1
MAX_AFFINITY = 10.0
CHOICE_OFFSET = 2.0


def squashed(linear: np.ndarray) -> np.ndarray:
    return 4.0 * MAX_AFFINITY * (1.0 / (1.0 + np.exp(-linear / MAX_AFFINITY)) - 0.5)


class UserModel:
    """RecSim NG's interest-evolution user, in numpy, over a batch of interests."""

    def __init__(self, env: InterestEvolutionVectorEnv, slate_size: int) -> None:
        self.features = env.doc_features.astype(np.float64)
        documents = env.ecosystem.documents
        self.consumed = documents["doc_length"] / (1.0 + np.exp(documents["doc_quality"]))  # length * sigmoid(-q)
        self.quality = env.doc_quality.astype(np.float64)
        self.slates = np.array(list(itertools.combinations(range(len(self.features)), slate_size)))

    def logits(self, interest: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """[..., k + 1] choice logits of each slate document, then of nothing."""
        affinity = CHOICE_OFFSET - np.linalg.norm(interest[..., None, :] - self.features[slates], axis=-1)
        return np.concatenate([affinity, np.zeros_like(affinity[..., :1])], axis=-1)

    def expected_rewards(self, interest: np.ndarray) -> np.ndarray:
        """[..., slates] expected consumed time of every slate."""
        affinity = CHOICE_OFFSET - np.linalg.norm(interest[..., None, :] - self.features, axis=-1)
        weight = np.exp(affinity)[..., self.slates]  # [..., slates, k]
        return (weight * self.consumed[self.slates]).sum(axis=-1) / (weight.sum(axis=-1) + 1.0)

    def next_interest(self, interest: np.ndarray, chosen_doc: np.ndarray) -> np.ndarray:
        """The simulator's update: a linear step from the last interest when something was consumed,
        then the squash, which is applied every step (also when nothing was)."""
        doc = np.maximum(chosen_doc, 0)
        step = INTEREST_STEP * self.quality[doc][..., None] * (self.features[doc] - interest)
        return squashed(np.where(chosen_doc[..., None] >= 0, interest + step, interest))


class InterestOracle:
    """The best slate for each user's next response, given the users' interests."""

    def __init__(self, model: UserModel, first_slates: np.ndarray) -> None:
        self.model, self.first_slates = model, first_slates
        self.interest: np.ndarray | None = None
        self.expected: list[float] = []  # expected reward of each slate chosen, for the check

    def slates(self) -> np.ndarray:
        if self.interest is None:
            return self.first_slates
        expected = self.model.expected_rewards(self.interest)
        best = expected.argmax(axis=1)
        self.expected.append(float(expected[np.arange(len(best)), best].mean()))
        return self.model.slates[best]

    def observe(self, slates: np.ndarray, choice: np.ndarray, interest: np.ndarray) -> np.ndarray:
        self.interest = self.model.next_interest(interest, chosen_docs(slates, choice))
        return self.interest


class InterestFilter:
    """The best slate in expectation over a particle posterior of each user's interest."""

    def __init__(self, model: UserModel, users: int, particles: int, seed: int, nutritious_only: bool) -> None:
        self.model, self.rng = model, np.random.default_rng(seed)
        nutritious = (model.quality[model.slates] >= 0).all(axis=1)
        self.penalty = np.where(nutritious | (not nutritious_only), 0.0, -np.inf)  # [slates]
        self.particles = self.rng.standard_normal((users, particles, model.features.shape[1]))
        self.log_weights = np.zeros((users, particles))

    def slates(self) -> np.ndarray:
        weights = np.exp(self.log_weights - self.log_weights.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        # one user at a time: particles x slates x k floats for all users at once are gigabytes
        best = [(w @ self.model.expected_rewards(p) + self.penalty).argmax() for w, p in zip(weights, self.particles)]
        return self.model.slates[best]

    def observe(self, slates: np.ndarray, choice: np.ndarray, interest: np.ndarray) -> None:
        del interest  # hidden from the filter
        logits = self.model.logits(self.particles, slates[:, None, :])  # [users, particles, k + 1]
        chosen_logit = np.take_along_axis(logits, np.broadcast_to(choice[:, None, None], (*logits.shape[:2], 1)), -1)
        self.log_weights += chosen_logit[..., 0] - np.logaddexp.reduce(logits, axis=-1)
        chosen = np.broadcast_to(chosen_docs(slates, choice)[:, None], self.log_weights.shape)
        self.particles = self.model.next_interest(self.particles, chosen)
        self._resample_where_degenerate()

    def _resample_where_degenerate(self) -> None:
        weights = np.exp(self.log_weights - self.log_weights.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        count = self.particles.shape[1]
        for user in np.flatnonzero(1.0 / (weights**2).sum(axis=1) < count / 2):
            picked = self.rng.choice(count, count, p=weights[user])
            # the dynamics are deterministic: a little jitter keeps resampled particles apart
            self.particles[user] = self.particles[user, picked] + 0.05 * self.rng.standard_normal(
                self.particles[user].shape
            )
            self.log_weights[user] = 0.0


def sem(values) -> float:
    return float(np.std(values, ddof=1) / np.sqrt(len(values)))


def chosen_docs(slates: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """The consumed corpus index per user, -1 where nothing was consumed."""
    k = slates.shape[1]
    return np.where(choice < k, slates[np.arange(len(slates)), np.minimum(choice, k - 1)], -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="tasks/recsim-interest.yaml")
    parser.add_argument("--slate", type=int, nargs="+", required=True, help="the fixed_slate baseline's slate")
    parser.add_argument("--episodes", type=int, default=None, help="default: the task's eval.episodes")
    parser.add_argument("--particles", type=int, default=256, help="the filter's particles per user")
    args = parser.parse_args()
    runtime = prepare_task(load_task(Path(args.task)))
    task, options = runtime.task, runtime.context.options
    episodes, users = args.episodes or task.eval.episodes, task.env.num_envs
    env = InterestEvolutionVectorEnv(options, users, AutoresetMode.DISABLED)
    model = UserModel(env, options.slate_size)
    fixed = np.tile(args.slate, (users, 1))
    names = ("fixed slate", "interest oracle", "interest filter", "interest filter, nutritious documents")
    returns: dict[str, list[float]] = {name: [] for name in names}
    expected_sum = realised_sum = worst_interest_error = 0.0
    for first in range(task.eval.seed, task.eval.seed + episodes, users):  # the evaluation's batches and seeds
        for name in returns:
            oracle = InterestOracle(model, fixed)
            policy = oracle
            if name.startswith("interest filter"):
                policy = InterestFilter(model, users, args.particles, first, nutritious_only=name.endswith("documents"))
            slates = fixed if name == "fixed slate" else policy.slates()
            result = env.ecosystem.start(slates, seed=first)
            total = result.reward.astype(np.float64)
            for _ in range(options.horizon - 1):
                predicted = oracle.observe(slates, result.choice, result.interest.astype(np.float64))
                if policy is not oracle:
                    policy.observe(slates, result.choice, result.interest.astype(np.float64))
                slates = fixed if name == "fixed slate" else policy.slates()
                result = env.ecosystem.advance(slates)
                worst_interest_error = max(worst_interest_error, float(np.abs(predicted - result.interest).max()))
                if name == "interest oracle":
                    realised_sum += float(result.reward.mean())
                    expected_sum += oracle.expected[-1]
                total += result.reward
            returns[name].extend(total.tolist())
        batch = ", ".join(f"{name} {np.mean(values[-users:]):.2f}" for name, values in returns.items())
        print(f"users {first}..{first + users - 1}: {batch}", flush=True)
    steps = len(returns["interest oracle"]) // users * (options.horizon - 1)
    print(f"\n{episodes} evaluation users (seeds {task.eval.seed}..{task.eval.seed + episodes - 1})")
    fixed_returns = np.asarray(returns["fixed slate"])
    for name, values in returns.items():
        line = f"{name}: mean return {np.mean(values):.2f} (standard error {sem(values):.2f})"
        if name != "fixed slate":
            gain = np.asarray(values) - fixed_returns  # the same users: paired
            line += f"; minus the fixed slate's, user by user: {gain.mean():+.2f} (se {sem(gain):.2f})"
        print(line)
    expected, realised = expected_sum / steps, realised_sum / steps
    print(f"interest oracle's slates: expected reward per step {expected:.4f}, realised {realised:.4f}")
    print(f"largest error of the predicted interest: {worst_interest_error:.2e}")


if __name__ == "__main__":
    main()
