"""The domain contract: what a plugin hands to the shared Transformer-DQN.

A domain supplies four things, bundled in a :class:`DomainSpec`:

* an environment factory (a gymnasium ``Env`` whose action space is ``Discrete(n)``, or
  ``MultiDiscrete([n] * k)`` for a *slate*: k distinct items out of n, as in recommendation
  (:class:`Slate` is that space with samples and ``contains`` that respect "distinct"); a
  slate env should report ``info["slate_choice"]``, the slot the user consumed or k for none, so
  that learning credits the consumed item alone),
* a :class:`StateEncoder` mapping a batch of observations to :class:`Tokens`,
* a :class:`RewardAdapter` mapping the env's reward and info to the training reward and to the
  domain's own episode metrics,
* baseline policies (``random`` is provided by the core; a domain adds its heuristics).

Shape suffixes used throughout attnq: ``B`` batch, ``T`` tokens, ``D`` model width, ``A`` actions,
``H`` heads, ``N`` parallel environments. ``tokens_BTD`` is a ``[B, T, D]`` tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn


@dataclass(frozen=True)
class Tokens:
    """Token embeddings and their presence mask.

    ``mask_BT`` is True where a token exists; absent tokens (an empty vehicle slot, padding) are
    never attended to. ``query_index`` names the token whose output is pooled for Q-values when
    the model pools on a domain token (the ego vehicle in ego-attention) instead of a [CLS] token.
    ``context``, when set, is the only tokens attended to (keys and values) besides the pooled query
    token: e.g. candidate documents that attend to the user's history and not to each other, which
    costs attention over the context alone instead of over every token.
    """

    embeddings_BTD: torch.Tensor
    mask_BT: torch.Tensor
    query_index: int = 0
    context: slice | None = None


class StateEncoder(nn.Module):
    """Observation batch -> :class:`Tokens`. Subclasses set ``num_tokens`` and implement both methods.

    The encoder owns everything domain-specific about the input: feature scaling, token types,
    positional encodings. The Transformer-DQN sees only tokens.
    """

    num_tokens: int

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model

    def forward(self, observations_BX: torch.Tensor) -> Tokens:  # pragma: no cover - abstract
        raise NotImplementedError

    def token_labels(self, observation: np.ndarray) -> list[str]:
        """Readable label per token of ONE observation ("ego", "car 3: +18 m, lane +1")."""
        raise NotImplementedError

    def token_positions(self, observation: np.ndarray) -> list[tuple[float, float] | None] | None:
        """Optional: a 2-D position per token of ONE observation (None for tokens without one), so
        attention can be drawn as a scene (driving: metres relative to ego). None = no scene."""
        return None

    def action_mask(self, observations_BX: torch.Tensor) -> torch.Tensor | None:
        """Boolean ``[B, A]`` mask of admissible actions, or None when every action is allowed."""
        return None


class RewardAdapter(Protocol):
    """Turns env rewards into training rewards and accumulates the domain's episode metrics."""

    metric_names: tuple[str, ...]

    def training_reward(self, env_reward: float, info: Mapping[str, Any]) -> float:
        """The reward the learner sees for one step."""
        ...

    def new_episode(self) -> EpisodeMetrics:
        """A fresh accumulator for one episode."""
        ...


class EpisodeMetrics(Protocol):
    """Accumulates one episode; ``summary`` returns the domain metrics (always includes ``return``)."""

    def add_step(self, env_reward: float, info: Mapping[str, Any]) -> None: ...

    def summary(self) -> dict[str, float]: ...


class Policy(Protocol):
    """A policy acting on a batch of observations: ``[N, ...] -> [N]`` integer actions
    (``[N, k]`` for a domain whose action is a slate of k items)."""

    def __call__(self, observations: np.ndarray) -> np.ndarray: ...


class NoOptions(BaseModel):
    """Default domain options: none allowed."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class DomainContext:
    """What factories receive: the domain's validated options and a probe env for spaces."""

    options: BaseModel
    env_id: str
    env_kwargs: Mapping[str, Any]
    probe_env: gym.Env


@dataclass(frozen=True)
class DomainSpec:
    """Everything the core needs from a domain. Registered via the ``attnq_register_domains`` hook.

    ``make_env(env_id, env_kwargs, options)`` builds one environment; it is called inside worker
    processes, so it must be a picklable top-level function. ``make_encoder(context, d_model)``,
    ``make_reward_adapter(context)`` and each ``baselines[name](context, seed)`` run in the main
    process. ``options_model`` validates the task file's ``domain_options`` block.
    ``exact_return(context, policy)``, for domains with a known model, gives a deterministic
    policy's exact expected return (benchmarks print it beside the sampled one).
    ``action_names(context)`` names each action for attention pictures and reports.
    ``metrics`` says in one line each what the domain's episode metrics mean (``return`` and
    ``length`` are explained by the core unless given); reports print it under their tables.
    ``libraries`` names the distributions the domain's results depend on (its simulator); reports
    print their installed versions beside the plugin's own. ``headline_metric`` is the metric a
    report's summary table shows (default: ``exact_return`` where the domain computes it, else
    ``return``). ``make_task(arg)`` gives the task a name ``DOMAIN:ARG`` stands for (``gym:CartPole-v1``),
    so such a task needs no task file. ``check_task(task, context)`` refuses task settings that do not
    fit the domain's data (raise ``attnq.errors.TaskFileError`` naming the field and the fix).
    ``data_fingerprint(context)`` summarises data a trained network depends on beyond the task file
    (a corpus's vocabulary: its word ids); checkpoints keep it, and loading one whose data changed
    since training is refused.
    ``make_vector_env(env_id, env_kwargs, options, num_envs, autoreset_mode)``, for simulators
    that step a whole batch natively (RecSim NG steps every user in one graph), replaces the
    gymnasium Sync/Async vector env of ``make_env`` copies; it must follow gymnasium's
    ``AutoresetMode`` semantics (``SAME_STEP`` for training, ``DISABLED`` for evaluation).
    """

    name: str
    description: str
    make_env: Callable[[str, Mapping[str, Any], BaseModel], gym.Env]
    make_encoder: Callable[[DomainContext, int], StateEncoder]
    make_reward_adapter: Callable[[DomainContext], RewardAdapter]
    baselines: Mapping[str, Callable[[DomainContext, int], Policy]] = field(default_factory=dict)
    options_model: type[BaseModel] = NoOptions
    task_dirs: tuple[Path, ...] = ()
    extra: str | None = None
    exact_return: Callable[[DomainContext, Policy], float] | None = None
    action_names: Callable[[DomainContext], Sequence[str]] | None = None
    make_vector_env: (
        Callable[[str, Mapping[str, Any], BaseModel, int, gym.vector.AutoresetMode], gym.vector.VectorEnv] | None
    ) = None
    metrics: Mapping[str, str] = field(default_factory=dict)
    libraries: tuple[str, ...] = ()
    headline_metric: str | None = None
    make_task: Callable[[str], Mapping[str, Any]] | None = None
    check_task: Callable[[Any, DomainContext], None] | None = None
    data_fingerprint: Callable[[DomainContext], str] | None = None


# What the core's own metrics mean; a domain's ``metrics`` may say more about them.
CORE_METRICS = {
    "return": "sum of the env's rewards over an episode",
    "length": "env steps per episode",
    "exact_return": "the greedy policy's exact expected return on the domain's known model (no sampling noise)",
}


class SumRewardAdapter:
    """The simplest adapter: train on the env reward; report return and episode length."""

    metric_names = ("return", "length")

    def training_reward(self, env_reward: float, info: Mapping[str, Any]) -> float:
        return float(env_reward)

    def new_episode(self) -> ReturnAndLength:
        return ReturnAndLength()


class ReturnAndLength:
    """Episode accumulator for :class:`SumRewardAdapter`; domain metrics can extend it."""

    def __init__(self) -> None:
        self.episode_return = 0.0
        self.length = 0

    def add_step(self, env_reward: float, info: Mapping[str, Any]) -> None:
        self.episode_return += float(env_reward)
        self.length += 1

    def summary(self) -> dict[str, float]:
        return {"return": self.episode_return, "length": float(self.length)}


def distinct_items(rng: np.random.Generator, rows: tuple[int, ...], num_items: int, slate_size: int) -> np.ndarray:
    """Uniform slates: for each of ``rows``, the first ``slate_size`` of a random permutation of
    ``num_items``, so no row repeats an item. Shape ``[*rows, slate_size]``."""
    return np.argsort(rng.random((*rows, num_items)), axis=-1)[..., :slate_size]


def admissible_at_random(rng: np.random.Generator, mask_BA: np.ndarray, slate_size: int) -> np.ndarray:
    """Uniform among each row's admissible actions (``mask_BA`` True): random scores, inadmissible ones
    below all others, the best one ``[B]`` or for slates the ``slate_size`` best distinct ``[B, k]``."""
    scores_BA = np.where(mask_BA, rng.random(mask_BA.shape), -1.0)
    order_BA = np.argsort(-scores_BA, axis=-1, kind="stable")
    return order_BA[:, 0] if slate_size == 1 else order_BA[:, :slate_size]


def repeats_an_item(slates: np.ndarray) -> np.ndarray:
    """Per slate (the last axis), whether it names some item twice. Shape ``slates.shape[:-1]``."""
    ordered = np.sort(np.asarray(slates), axis=-1)
    return (ordered[..., 1:] == ordered[..., :-1]).any(axis=-1)


class Slate(gym.spaces.MultiDiscrete):
    """``slate_size`` distinct items out of ``num_items``: a ``MultiDiscrete([n] * k)`` whose
    ``sample`` never repeats an item and whose ``contains`` rejects a repeat, as a slate env's
    ``step`` does. With ``batch``, a vector env's action space of ``batch`` such rows.

    :param num_items: the n items a slate picks from
    :param slate_size: the k items in one slate, at most n
    :param batch: number of stacked slates (a vector env's ``num_envs``), or None for one slate
    :param seed: seed for ``sample``
    """

    def __init__(self, num_items: int, slate_size: int, batch: int | None = None, seed: int | None = None) -> None:
        if not 1 <= slate_size <= num_items:
            raise ValueError(f"a slate needs 1 <= slate_size <= num_items; got {slate_size} of {num_items}")
        shape = (slate_size,) if batch is None else (batch, slate_size)
        super().__init__(np.full(shape, num_items, dtype=np.int64), seed=seed)
        self.num_items, self.slate_size, self.batch = num_items, slate_size, batch

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        if mask is not None or probability is not None:
            raise NotImplementedError("Slate.sample draws uniform slates; it takes no mask or probability")
        return distinct_items(self.np_random, self.shape[:-1], self.num_items, self.slate_size).astype(self.dtype)

    def contains(self, x: Any) -> bool:
        return super().contains(x) and not repeats_an_item(np.asarray(x)).any()

    def __repr__(self) -> str:
        batch = "" if self.batch is None else f", batch={self.batch}"
        return f"Slate({self.num_items}, {self.slate_size}{batch})"


class RandomPolicy:
    """Uniform random actions (or slates of ``slate_size`` distinct items), seeded for reproducible
    baselines. With ``action_mask`` (observations -> boolean ``[B, A]`` admissible actions, or None
    when all are), uniform over the admissible ones only, as the agent's own exploration is.

    :param num_actions: actions (or items) to draw from
    :param seed: seed of the draws
    :param slate_size: items per slate; 1 draws single actions
    :param action_mask: the domain's admissible actions per observation, or None for all of them
    """

    def __init__(
        self,
        num_actions: int,
        seed: int,
        slate_size: int = 1,
        action_mask: Callable[[np.ndarray], np.ndarray | None] | None = None,
    ) -> None:
        self.num_actions = num_actions
        self.slate_size = slate_size
        self.action_mask = action_mask
        self.rng = np.random.default_rng(seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        mask_BA = None if self.action_mask is None else self.action_mask(observations)
        if mask_BA is not None:
            return admissible_at_random(self.rng, mask_BA, self.slate_size)
        if self.slate_size == 1:
            return self.rng.integers(0, self.num_actions, size=len(observations))
        return distinct_items(self.rng, (len(observations),), self.num_actions, self.slate_size)
