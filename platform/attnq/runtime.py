"""A task bound to its domain: builds envs, vector envs, the encoder, the Q-network and baselines.

``prepare_task`` is where a task file meets a plugin. It checks, once and with clear errors, that
the domain exists, its options validate, the env has a discrete action space (or a slate of
distinct items) and that the encoder can actually take the env's observations.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import ValidationError

from attnq.config import TaskConfig, format_validation_error
from attnq.domain import DomainContext, DomainSpec, Policy, RandomPolicy, RewardAdapter, Tokens
from attnq.errors import CheckpointError, PluginError, TaskFileError
from attnq.model.transformer_dqn import TransformerDQN
from attnq.registry import PluginHost, load_plugins

# highway-env warns that intersection-v0 is "out of date"; the task files pin it on purpose.
warnings.filterwarnings("ignore", message=".*is out of date.*")


@dataclass
class TaskRuntime:
    task: TaskConfig
    domain: DomainSpec
    context: DomainContext
    num_actions: int
    observation_shape: tuple[int, ...]
    slate_size: int = 1  # >1: an action is this many distinct items out of ``num_actions``

    def env_factory(self, evaluation: bool = False, extra: Mapping[str, Any] | None = None) -> Callable[[], gym.Env]:
        """A picklable zero-argument factory (for vector-env worker processes); see :func:`task_env_kwargs`."""
        return functools.partial(
            self.domain.make_env, self.task.env.id, task_env_kwargs(self.task, evaluation, extra), self.context.options
        )

    def make_env(self, evaluation: bool = False, extra: Mapping[str, Any] | None = None) -> gym.Env:
        return self.env_factory(evaluation, extra)()

    def make_vector_env(
        self,
        num_envs: int | None = None,
        autoreset: str = "same_step",
        evaluation: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> gym.vector.VectorEnv:
        """``same_step`` for training (final obs in info); ``disabled`` for fixed-seed evaluation."""
        count = num_envs or self.task.env.num_envs
        mode = {"same_step": gym.vector.AutoresetMode.SAME_STEP, "disabled": gym.vector.AutoresetMode.DISABLED}[
            autoreset
        ]
        if self.domain.make_vector_env is not None:
            kwargs = task_env_kwargs(self.task, evaluation, extra)
            return self.domain.make_vector_env(self.task.env.id, kwargs, self.context.options, count, mode)
        factories = [self.env_factory(evaluation, extra)] * count
        if self.task.env.vectorization == "async" and count > 1:
            return gym.vector.AsyncVectorEnv(factories, autoreset_mode=mode)
        return gym.vector.SyncVectorEnv(factories, autoreset_mode=mode)

    def build_q_network(self) -> TransformerDQN:
        encoder = self.domain.make_encoder(self.context, self.task.model.d_model)
        return TransformerDQN(encoder, self.num_actions, self.task.model)

    def reward_adapter(self) -> RewardAdapter:
        return self.domain.make_reward_adapter(self.context)

    def action_names(self) -> list[str]:
        """The domain's names for the actions, or their numbers when it gives none."""
        if self.domain.action_names is None:
            return [str(a) for a in range(self.num_actions)]
        return list(self.domain.action_names(self.context))

    def data_fingerprint(self) -> str | None:
        """The domain's summary of the data a network trained on this task depends on (or None)."""
        return None if self.domain.data_fingerprint is None else self.domain.data_fingerprint(self.context)

    def check_data_fingerprint(self, saved: str | None, source: object) -> None:
        """Refuse a checkpoint whose domain data (a corpus's vocabulary) changed since it was saved."""
        current = self.data_fingerprint()
        if saved is not None and current is not None and saved != current:
            raise CheckpointError(
                f"{source} was trained on other {self.domain.name!r} data than the task now reads (fingerprint "
                f"{saved[:12]} then, {current[:12]} now: e.g. an edited corpus file, whose word ids moved); "
                "fix: restore the data it was trained on, or train a new run"
            )

    def _admissible_actions(self) -> Callable[[np.ndarray], np.ndarray | None]:
        """The domain encoder's action mask over numpy observations (its weights play no part)."""
        encoder = self.domain.make_encoder(self.context, self.task.model.d_model)

        def mask(observations: np.ndarray) -> np.ndarray | None:
            mask_BA = encoder.action_mask(torch.as_tensor(np.asarray(observations), dtype=torch.float32))
            return None if mask_BA is None else mask_BA.numpy()

        return mask

    def baseline_names(self) -> list[str]:
        return ["random", *self.domain.baselines]

    def baseline(self, name: str, seed: int) -> Policy:
        if name == "random":
            return RandomPolicy(self.num_actions, seed, self.slate_size, self._admissible_actions())
        if name not in self.domain.baselines:
            raise PluginError(
                f"domain {self.domain.name!r} has no baseline {name!r}; available: {', '.join(self.baseline_names())}"
            )
        return self.domain.baselines[name](self.context, seed)


def task_env_kwargs(
    task: TaskConfig, evaluation: bool = False, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``env.kwargs``; for evaluation envs ``eval.env_kwargs`` merged over them (that is how a domain
    with held-out data, a corpus's test part, is evaluated on it and trained on the rest), then
    ``extra`` over those (the validation part of the evaluations during training, a variant)."""
    kwargs = merge_kwargs(task.env.kwargs, task.eval.env_kwargs) if evaluation else task.env.kwargs
    return merge_kwargs(kwargs, extra or {})


def merge_kwargs(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into ``base`` key by key, recursing into nested mappings (highway's ``config``)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_kwargs(merged[key], value)
        else:
            merged[key] = value
    return merged


def prepare_task(task: TaskConfig, host: PluginHost | None = None) -> TaskRuntime:
    host = host or load_plugins()
    domain = host.registry.get(task.domain)
    try:
        options = domain.options_model.model_validate(task.domain_options)
    except ValidationError as exc:
        raise TaskFileError(
            format_validation_error(f"task {task.name!r}", exc, domain.options_model, "domain_options.")
        ) from None
    try:
        probe_env = domain.make_env(task.env.id, task.env.kwargs, options)
    except gym.error.Error as exc:
        raise TaskFileError(
            f"task {task.name!r}: field 'env.id' = {task.env.id!r} could not be made: {exc}; fix: use an "
            f"env id the {domain.name!r} domain supports"
        ) from None
    except (TypeError, ValueError) as exc:  # how a domain's make_env refuses settings it does not know
        raise TaskFileError(
            f"task {task.name!r}: field 'env.kwargs' = {dict(task.env.kwargs)!r} gives no env: {exc}; fix: use "
            f"settings the {domain.name!r} environment accepts"
        ) from None
    num_actions, slate_size = action_space_shape(domain, task.env.id, probe_env.action_space)
    if slate_size > 1 and task.learner.advantage_learning:
        probe_env.close()
        raise TaskFileError(
            f"task {task.name!r}: field 'learner.advantage_learning' = {task.learner.advantage_learning} "
            f"needs single actions, but {task.env.id!r} acts with slates of {slate_size}; "
            "fix: set learner.advantage_learning=0"
        )
    if any(a >= num_actions for a in task.model.detached_actions):
        probe_env.close()
        raise TaskFileError(
            f"task {task.name!r}: field 'model.detached_actions' = {list(task.model.detached_actions)} names "
            f"actions past those of {task.env.id!r} (0 to {num_actions - 1}); fix: name actions in that range"
        )
    _check_eval_env_kwargs(task, domain, options)
    observation_shape = tuple(probe_env.observation_space.shape or ())
    context = DomainContext(options=options, env_id=task.env.id, env_kwargs=task.env.kwargs, probe_env=probe_env)
    runtime = TaskRuntime(task, domain, context, num_actions, observation_shape, slate_size)
    _check_encoder_accepts(runtime, probe_env)
    if domain.check_task is not None:
        domain.check_task(task, context)
    return runtime


def action_space_shape(domain: DomainSpec, env_id: str, space: gym.Space) -> tuple[int, int]:
    """``(num_actions, slate_size)``: ``Discrete(n)`` is ``(n, 1)``;
    ``MultiDiscrete([n] * k)`` is a slate ``(n, k)``."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n), 1
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1 and len(set(space.nvec.tolist())) == 1:
        num_actions, slate_size = int(space.nvec[0]), len(space.nvec)
        if slate_size <= num_actions:
            return num_actions, slate_size
    raise PluginError(
        f"domain {domain.name!r} env {env_id!r} has action space {space}; attnq needs Discrete(n) "
        "or a slate MultiDiscrete([n] * k) with k <= n (attnq.domain.Slate(n, k))"
    )


def _check_encoder_accepts(runtime: TaskRuntime, probe_env: gym.Env) -> None:
    """Fail early, naming the shapes, when the encoder cannot take the env's observations."""
    observation, _ = probe_env.reset(seed=runtime.task.seed)
    try:
        encoder = runtime.domain.make_encoder(runtime.context, runtime.task.model.d_model)
        with torch.no_grad():
            tokens = encoder(torch.as_tensor(np.asarray(observation, dtype=np.float32))[None])
    except Exception as exc:
        raise TaskFileError(
            f"task {runtime.task.name!r}: the {runtime.domain.name!r} encoder cannot take observations of shape "
            f"{np.shape(observation)} from env {runtime.task.env.id!r} ({type(exc).__name__}: {exc}); "
            "fix: the observation settings in env.kwargs must match what the encoder expects"
        ) from None
    name = runtime.domain.name
    if not isinstance(tokens, Tokens) or not isinstance(tokens.mask_BT, torch.Tensor):
        raise PluginError(
            f"{name!r} encoder returned {type(tokens).__name__} without a token mask; fix: return "
            "attnq.Tokens(embeddings_BTD, mask_BT), mask_BT a boolean [B, T] tensor (True where a token exists)"
        )
    if tokens.embeddings_BTD.shape[1:] != (encoder.num_tokens, runtime.task.model.d_model):
        raise PluginError(
            f"{name!r} encoder returned tokens {tuple(tokens.embeddings_BTD.shape)}, "
            f"expected [B, {encoder.num_tokens}, {runtime.task.model.d_model}]; fix: set num_tokens to the tokens "
            "forward returns"
        )
    if tokens.mask_BT.dtype != torch.bool or tuple(tokens.mask_BT.shape) != (1, encoder.num_tokens):
        raise PluginError(
            f"{name!r} encoder's token mask is {tuple(tokens.mask_BT.shape)} {tokens.mask_BT.dtype}, expected "
            f"(B, {encoder.num_tokens}) torch.bool; fix: True where a token exists, False for absent ones"
        )
    labels = encoder.token_labels(np.asarray(observation))
    if len(labels) != encoder.num_tokens:
        raise PluginError(
            f"{name!r} encoder's token_labels gave {len(labels)} labels for {encoder.num_tokens} tokens; fix: one "
            "label per token, in token order (attention pictures name tokens by them)"
        )


def split_vector_info(infos: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The info dict of sub-env ``index`` from a gymnasium 1.x batched info (``key``/``_key`` pairs)."""
    result: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        present = infos.get(f"_{key}")
        if present is not None and not present[index]:
            continue
        if isinstance(value, Mapping):
            result[key] = split_vector_info(value, index)
        else:
            result[key] = value[index]
    return result


def _check_eval_env_kwargs(task: TaskConfig, domain: DomainSpec, options: Any) -> None:
    """Every env an evaluation will make can be made: a bad key fails here, not after training."""
    # (field, its value, what it adds over eval.env_kwargs)
    fields = [("eval.env_kwargs", task.eval.env_kwargs, {})]
    if task.eval.every_env_steps:  # the validation env is made only by the evaluations during training
        fields.append(("eval.validation_env_kwargs", task.eval.validation_env_kwargs, task.eval.validation_env_kwargs))
    fields += [
        (f"eval.variants.{name}.env_kwargs", v.env_kwargs, v.env_kwargs) for name, v in task.eval.variants.items()
    ]
    for name, value, extra in fields:
        if not value:
            continue
        try:
            domain.make_env(task.env.id, task_env_kwargs(task, True, extra), options).close()
        except (gym.error.Error, TypeError, ValueError) as exc:
            raise TaskFileError(
                f"task {task.name!r}: field {name!r} = {value!r} gives an env that cannot be made ({exc}); "
                f"fix: use keys the {domain.name!r} environment accepts"
            ) from None
