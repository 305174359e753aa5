"""The recommendation domain (RecSim NG interest evolution), registered through ``attnq.plugins``.

Importing this module is cheap: TensorFlow and RecSim NG load only when an env or the
collaborative-filtering baseline is built, so ``import attnq`` never pulls TensorFlow in.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from attnq import DomainContext, DomainSpec, hookimpl
from attnq_recsim.baselines import CollabFilteringPolicy, FixedSlatePolicy, ObservedAffinityPolicy
from attnq_recsim.encoder import SlateEncoder
from attnq_recsim.environment import ENV_ID, InterestEvolutionVectorEnv, SingleUserEnv
from attnq_recsim.options import EcosystemOptions, TokenLayout
from attnq_recsim.reward import METRICS, ConsumedTimeRewardAdapter

if importlib.util.find_spec("recsim_ng") is None:
    raise ImportError("recsim-ng is not installed")


def _check(env_id: str, env_kwargs: Mapping[str, Any]) -> None:
    if env_id != ENV_ID:
        raise gym.error.Error(f"the recsim domain builds {ENV_ID!r} only")
    if env_kwargs:
        raise ValueError(
            f"{ENV_ID} takes no env.kwargs (got {sorted(env_kwargs)}); its settings live in domain_options"
        )


def make_env(env_id: str, env_kwargs: Mapping[str, Any], options: EcosystemOptions) -> gym.Env:
    _check(env_id, env_kwargs)
    return SingleUserEnv(options)


def make_vector_env(
    env_id: str, env_kwargs: Mapping[str, Any], options: EcosystemOptions, num_envs: int, autoreset_mode: AutoresetMode
) -> gym.vector.VectorEnv:
    _check(env_id, env_kwargs)
    return InterestEvolutionVectorEnv(options, num_envs, autoreset_mode)


def make_encoder(context: DomainContext, d_model: int) -> SlateEncoder:
    probe = context.probe_env.unwrapped
    return SlateEncoder(
        TokenLayout.of(context.options),
        probe.vector_env.doc_is_trashy,
        d_model,
        context.options.document_identity,
        attend_to_history=context.options.attend_to == "history",
    )


def make_reward_adapter(context: DomainContext) -> ConsumedTimeRewardAdapter:
    return ConsumedTimeRewardAdapter()


def observed_affinity(context: DomainContext, seed: int) -> ObservedAffinityPolicy:
    return ObservedAffinityPolicy(TokenLayout.of(context.options), context.options.slate_size, seed)


def fixed_slate(context: DomainContext, seed: int) -> FixedSlatePolicy:
    return FixedSlatePolicy(context.options, seed)


def recsim_collab_filtering(context: DomainContext, seed: int) -> CollabFilteringPolicy:
    settings = context.options.collab_filtering
    return CollabFilteringPolicy(context.options, settings.user_steps, settings.num_users, settings.learning_rate, seed)


def action_names(context: DomainContext) -> list[str]:
    trashy = context.probe_env.unwrapped.vector_env.doc_is_trashy
    return [f"doc {d} ({'T' if is_trashy else 'N'})" for d, is_trashy in enumerate(trashy)]


@hookimpl
def attnq_register_domains(registry) -> None:
    registry.add(
        DomainSpec(
            name="recsim",
            description="Recommend slates to RecSim NG interest-evolution users (consumed time as reward)",
            make_env=make_env,
            make_vector_env=make_vector_env,
            make_encoder=make_encoder,
            make_reward_adapter=make_reward_adapter,
            baselines={
                "observed_affinity": observed_affinity,
                "fixed_slate": fixed_slate,
                "recsim_collab_filtering": recsim_collab_filtering,
            },
            options_model=EcosystemOptions,
            extra="recsim",
            action_names=action_names,
            metrics=METRICS,
            libraries=("recsim-ng", "tensorflow"),
        )
    )
