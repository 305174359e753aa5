"""The medical domain (ICU-Sepsis), registered through the ``attnq.plugins`` entry point."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator
from gymnasium.wrappers import TimeLimit
from pydantic import BaseModel

from attnq import DomainContext, DomainSpec, hookimpl
from attnq_sepsis.baselines import ClinicianPolicy, OptimalPolicy
from attnq_sepsis.encoder import ClinicalFeatureEncoder
from attnq_sepsis.environment import (
    DOSE_LEVELS,
    NUM_ACTIONS,
    ClinicalObservation,
    import_icu_sepsis,
    observations_for_states,
)
from attnq_sepsis.reward import METRICS, SurvivalRewardAdapter
from attnq_sepsis.value_iteration import SepsisMDP


@functools.lru_cache(maxsize=1)
def shared_mdp_parameters():
    """The package's MDP tables, loaded once per process.

    Each ICU-Sepsis env otherwise loads its own copy: two 716x25x716 float64 tables, about 204 MB
    and 0.6 s per env, so 32 training envs took 6.5 GB. The env only reads them, so every env of a
    process shares one copy through the env's own ``params`` argument.
    """
    from icu_sepsis.envs import sepsis
    from icu_sepsis.utils.io import MDPParameters

    return MDPParameters(Path(sepsis.__file__).parent / "assets")


def check_env_kwargs(env_id: str, env_kwargs: Mapping[str, Any]) -> None:
    """The env takes ``**kwargs`` and ignores what it does not know, so a misspelled setting would
    silently train the default; its named settings are the only ones accepted."""
    from icu_sepsis.envs.sepsis import ICUSepsisEnv

    parameters = inspect.signature(ICUSepsisEnv.__init__).parameters.values()
    known = sorted(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name != "params")
    unknown = sorted(set(env_kwargs) - set(known))
    if unknown:
        raise ValueError(f"{unknown} are not settings of {env_id}; it takes {known}")


def make_env(env_id: str, env_kwargs: Mapping[str, Any], options: BaseModel) -> gym.Env:
    """The registered env built from its entry point, with the shared tables and its time limit.

    Not ``gym.make``: it records the kwargs in the env's spec, and every wrapper deep-copies the
    spec, which would copy the shared tables again.
    """
    import_icu_sepsis()
    check_env_kwargs(env_id, env_kwargs)
    spec = gym.spec(env_id)
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    env = creator(**{**spec.kwargs, "params": shared_mdp_parameters(), **dict(env_kwargs)})
    if spec.max_episode_steps is not None:
        env = TimeLimit(env, spec.max_episode_steps)
    return ClinicalObservation(env)


def make_encoder(context: DomainContext, d_model: int) -> ClinicalFeatureEncoder:
    return ClinicalFeatureEncoder(d_model)


def make_reward_adapter(context: DomainContext) -> SurvivalRewardAdapter:
    return SurvivalRewardAdapter()


def exact_return(context: DomainContext, policy) -> float:
    """A deterministic policy's exact expected return on the package's MDP (no sampling noise)."""
    mdp = SepsisMDP.from_env(context.probe_env)
    states = np.arange(len(mdp.initial_S))
    return mdp.deterministic_policy_value(np.asarray(policy(observations_for_states(context.probe_env, states))))


def action_names(context: DomainContext) -> list[str]:
    return [f"fluid {a // DOSE_LEVELS} vaso {a % DOSE_LEVELS}" for a in range(NUM_ACTIONS)]


@hookimpl
def attnq_register_domains(registry) -> None:
    registry.add(
        DomainSpec(
            name="sepsis",
            description="ICU sepsis treatment (ICU-Sepsis, from MIMIC-III): one token per clinical feature",
            make_env=make_env,
            make_encoder=make_encoder,
            make_reward_adapter=make_reward_adapter,
            baselines={"clinician": ClinicianPolicy, "optimal": OptimalPolicy},
            extra="sepsis",
            exact_return=exact_return,
            action_names=action_names,
            metrics=METRICS,
            libraries=("icu-sepsis",),
        )
    )
