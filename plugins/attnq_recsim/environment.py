"""RecSim NG's interest-evolution ecosystem as a gymnasium vector env: one sub-env per user.

Every step, the agent recommends a slate (``slate_size`` distinct corpus indices) to each user;
RecSim NG's users choose one document or none and consume it; the reward is the application's
``ConsumedTimeAsRewardMetrics`` reward. All users of the batch start and end together (a horizon
of ``horizon`` slates), so autoreset happens for the whole batch at once.

Observation per user (see :class:`~attnq_recsim.options.TokenLayout`): the candidate documents,
then the user's consumed history (document and consumed time), newest last - the same history
RecSim NG's collaborative-filtering recommender keeps. The user's interest is hidden; ``info``
reports the quality of what was consumed (RecSim NG's ``doc_quality``) for the domain's metrics.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from attnq.domain import Slate, repeats_an_item
from attnq_recsim.options import EcosystemOptions, TokenLayout

ENV_ID = "RecSimNG/InterestEvolution-v0"
NO_DOC = -1


# Seeds of the batches after an autoreset start here: evaluations count up from small seeds.
AUTORESET_SEEDS_START = 2**62


def batch_seed(reset_seed: int | None, batch: int) -> int | None:
    """The seed of the users of the ``batch``-th batch after ``reset(seed=reset_seed)``: the reset's
    own seed for batch 0, then one per autoreset.

    Each batch needs a seed of its own: any seeded start (a validation round between two training
    batches) seeds TensorFlow again, which restarts every traced random stream, so users that only
    followed the stream met the first batch's users again after every validation round."""
    if reset_seed is None:
        return None  # an unseeded env stays unseeded: its users follow the simulator's stream
    if batch == 0:
        return reset_seed
    return AUTORESET_SEEDS_START + int(
        np.random.SeedSequence([reset_seed, batch]).generate_state(1, np.uint64)[0] % 2**62
    )


class InterestEvolutionVectorEnv(gym.vector.VectorEnv):
    def __init__(
        self, options: EcosystemOptions, num_envs: int, autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP
    ) -> None:
        from attnq_recsim.simulation import EcosystemConfig, InterestEvolutionEcosystem  # imports TensorFlow

        if autoreset_mode not in (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED):
            raise ValueError(f"{ENV_ID} supports autoreset modes SAME_STEP and DISABLED, not {autoreset_mode}")
        self.options = options
        self.num_envs = num_envs
        self.layout = TokenLayout.of(options)
        self.ecosystem = InterestEvolutionEcosystem(
            EcosystemConfig(
                num_users=num_envs,
                num_topics=options.num_topics,
                num_docs=options.num_docs,
                slate_size=options.slate_size,
                history_length=options.history_length,
                corpus_seed=options.corpus_seed,
            )
        )
        self.metadata = {"autoreset_mode": autoreset_mode}
        self.single_observation_space = gym.spaces.Box(
            -np.inf, np.inf, (self.layout.num_rows, self.layout.num_columns), np.float32
        )
        self.single_action_space = Slate(options.num_docs, options.slate_size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = Slate(options.num_docs, options.slate_size, batch=num_envs)
        documents = self.ecosystem.documents
        self.doc_features = documents["doc_features"].astype(np.float32)  # [docs, topics]
        self.doc_quality = documents["doc_quality"].astype(np.float32)
        self.doc_is_trashy = documents["doc_topic"].astype(np.int64) < options.num_trashy_topics
        self.candidate_rows = self._candidate_rows()
        self.history_docs = np.full((num_envs, options.history_length), NO_DOC, dtype=np.int64)
        self.history_time = np.zeros((num_envs, options.history_length), dtype=np.float32)
        self.steps_taken = 0
        self.reset_seed: int | None = None  # the seed of the last reset, which the later batches derive from
        self.batches_since_reset = 0
        self.started = False

    # ----- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        mask = None if options is None else options.get("reset_mask")
        if mask is not None and not np.all(mask):
            raise ValueError(f"{ENV_ID}: the users of one RecSim NG batch start together; reset_mask must be all True")
        first_seed = seed[0] if isinstance(seed, (list, tuple)) else seed
        self.reset_seed = None if first_seed is None else int(first_seed)
        self.batches_since_reset = 0
        self._new_episode()
        return self._observations(), {}

    def step(self, actions):
        slates = self._validate(actions)
        if not self.started:
            # The users' initial state is drawn together with their first response, so the
            # agent's first slate is chosen from the documents alone (no history yet).
            # an autoreset's seed never comes again: its graphs are not worth keeping
            seed = batch_seed(self.reset_seed, self.batches_since_reset)
            result = self.ecosystem.start(slates, seed=seed, keep=self.batches_since_reset == 0)
            self.started = True
        else:
            result = self.ecosystem.advance(slates)
        self.steps_taken += 1
        clicked = result.choice < self.options.slate_size
        rows = np.arange(self.num_envs)
        chosen_doc = np.where(clicked, slates[rows, np.minimum(result.choice, self.options.slate_size - 1)], NO_DOC)
        self._remember(chosen_doc, result.consumed_time, clicked)
        info = {
            "slate_choice": result.choice,  # the core credits the consumed item alone (SlateQ)
            "clicked": clicked,
            "consumed_time": result.reward,
            "chosen_doc": chosen_doc,
            "chosen_nutritious": clicked & ~self.doc_is_trashy[np.maximum(chosen_doc, 0)],
            # RecSim NG's own document quality (negative for its "trashy" topics), 0 when nothing was consumed
            "consumed_quality": np.where(clicked, self.doc_quality[np.maximum(chosen_doc, 0)], 0.0).astype(np.float32),
        }
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.full(self.num_envs, self.steps_taken >= self.options.horizon)
        observations = self._observations()
        if truncated[0] and self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP:
            info = {"final_obs": observations, "final_info": info}
            self.batches_since_reset += 1
            self._new_episode()
            observations = self._observations()
        return observations, result.reward.copy(), terminated, truncated, info

    # ----- internals ----------------------------------------------------------------------------
    def _validate(self, actions) -> np.ndarray:
        slates = np.asarray(actions, dtype=np.int64).reshape(self.num_envs, -1)
        k, n = self.options.slate_size, self.options.num_docs
        if slates.shape[1] != k or slates.min() < 0 or slates.max() >= n:
            raise ValueError(
                f"{ENV_ID}: each action must be {k} corpus indices in [0, {n}); got shape {np.shape(actions)}"
            )
        if repeats_an_item(slates).any():
            raise ValueError(f"{ENV_ID}: a slate must not repeat a document")
        return slates

    def _new_episode(self) -> None:
        self.history_docs.fill(NO_DOC)
        self.history_time.fill(0.0)
        self.steps_taken = 0
        self.started = False

    def _remember(self, chosen_doc: np.ndarray, consumed_time: np.ndarray, clicked: np.ndarray) -> None:
        # RecSim NG's recommender history: only users who consumed something shift it (oldest drops).
        shifted_docs = np.concatenate([self.history_docs[:, 1:], chosen_doc[:, None]], axis=1)
        shifted_time = np.concatenate([self.history_time[:, 1:], consumed_time[:, None]], axis=1)
        self.history_docs = np.where(clicked[:, None], shifted_docs, self.history_docs)
        self.history_time = np.where(clicked[:, None], shifted_time, self.history_time)

    def _candidate_rows(self) -> np.ndarray:
        layout, rows = self.layout, np.zeros((self.options.num_docs, self.layout.num_columns), dtype=np.float32)
        rows[:, layout.PRESENT] = 1.0
        rows[:, layout.FEATURES : layout.quality] = self.doc_features
        if self.options.observe_quality:
            rows[:, layout.quality] = self.doc_quality
        rows[:, layout.doc_index] = np.arange(self.options.num_docs)
        return rows

    def _observations(self) -> np.ndarray:
        layout = self.layout
        observations = np.zeros((self.num_envs, layout.num_rows, layout.num_columns), dtype=np.float32)
        observations[:, : self.options.num_docs] = self.candidate_rows
        history = observations[:, layout.history_rows]
        present = self.history_docs != NO_DOC
        docs = np.maximum(self.history_docs, 0)
        history[..., layout.PRESENT] = present
        history[..., layout.IS_HISTORY] = 1.0
        history[..., layout.FEATURES : layout.quality] = self.doc_features[docs] * present[..., None]
        if self.options.observe_quality:
            history[..., layout.quality] = self.doc_quality[docs] * present
        history[..., layout.consumed_time] = self.history_time
        history[..., layout.doc_index] = np.where(present, docs, 0)
        return observations


class SingleUserEnv(gym.Env):
    """One user as a plain ``gym.Env`` (probing spaces, attention pictures)."""

    def __init__(self, options: EcosystemOptions) -> None:
        self.vector_env = InterestEvolutionVectorEnv(options, 1, AutoresetMode.DISABLED)
        self.observation_space = self.vector_env.single_observation_space
        self.action_space = self.vector_env.single_action_space

    @property
    def layout(self) -> TokenLayout:
        return self.vector_env.layout

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        observations, _ = self.vector_env.reset(seed=seed)
        return observations[0], {}

    def step(self, action):
        observations, rewards, terminated, truncated, info = self.vector_env.step(np.asarray(action)[None])
        return (
            observations[0],
            float(rewards[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            {k: v[0] for k, v in info.items()},
        )
