"""The medical domain (ICU-Sepsis), registered through the ``attnq.plugins`` entry point."""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from pydantic import BaseModel

from attnq import DomainContext, DomainSpec, hookimpl
from attnq_sepsis.baselines import ClinicianPolicy, OptimalPolicy
from attnq_sepsis.encoder import ClinicalFeatureEncoder
from attnq_sepsis.environment import ClinicalObservation, import_icu_sepsis, observations_for_states
from attnq_sepsis.reward import SurvivalRewardAdapter
from attnq_sepsis.value_iteration import SepsisMDP


def make_env(env_id: str, env_kwargs: Mapping[str, Any], options: BaseModel) -> gym.Env:
    import_icu_sepsis()
    # The package's env returns one shared info dict per step, which gymnasium's passive checker
    # warns about on every new env; the wrapper copies infos, so the warning is noise here.
    kwargs = {"disable_env_checker": True, **dict(env_kwargs)}
    return ClinicalObservation(gym.make(env_id, **kwargs))


def make_encoder(context: DomainContext, d_model: int) -> ClinicalFeatureEncoder:
    return ClinicalFeatureEncoder(d_model)


def make_reward_adapter(context: DomainContext) -> SurvivalRewardAdapter:
    return SurvivalRewardAdapter()


def exact_return(context: DomainContext, policy) -> float:
    """A deterministic policy's exact expected return on the package's MDP (no sampling noise)."""
    mdp = SepsisMDP.from_env(context.probe_env)
    states = np.arange(len(mdp.initial_S))
    return mdp.deterministic_policy_value(np.asarray(policy(observations_for_states(context.probe_env, states))))


@hookimpl
def attnq_register_domains(registry) -> None:
    registry.add(DomainSpec(
        name="sepsis",
        description="ICU sepsis treatment (ICU-Sepsis, from MIMIC-III): one token per clinical feature",
        make_env=make_env,
        make_encoder=make_encoder,
        make_reward_adapter=make_reward_adapter,
        baselines={"clinician": ClinicianPolicy, "optimal": OptimalPolicy},
        extra="sepsis",
        exact_return=exact_return,
    ))
