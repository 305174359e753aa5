"""The driving domain (highway-env), registered through the ``attnq.plugins`` entry point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from pydantic import BaseModel

from attnq import DomainContext, DomainSpec, hookimpl
from attnq_highway.baselines import GapKeeperPolicy, IdlePolicy
from attnq_highway.encoder import KinematicsEncoder, KinematicsLayout
from attnq_highway.reward import METRICS, DrivingRewardAdapter
from attnq_highway.vehicle_parameters import OwnVehicleParameters, library_defaults


def make_env(env_id: str, env_kwargs: Mapping[str, Any], options: BaseModel) -> gym.Env:
    import highway_env  # noqa: F401  (registers the highway-env ids with gymnasium)

    library_defaults()  # read before any env of this process can change them
    env = gym.make(env_id, **dict(env_kwargs))
    check_config_keys(env, env_kwargs.get("config", {}))
    return OwnVehicleParameters(env)


def check_config_keys(env: gym.Env, config: Mapping[str, Any]) -> None:
    """highway-env ignores config keys it does not know (a misspelling would silently change
    nothing): refuse them, naming the keys the env does know."""
    known = env.unwrapped.default_config()
    unknown = sorted(set(config) - set(known))
    if unknown:
        env.close()
        raise ValueError(
            f"config key(s) {', '.join(map(repr, unknown))} are not settings of "
            f"{env.spec.id if env.spec else 'this env'}; "
            f"it knows: {', '.join(sorted(known))}"
        )


def make_encoder(context: DomainContext, d_model: int) -> KinematicsEncoder:
    if context.probe_env.unwrapped.config["observation"].get("type") != "Kinematics":
        raise ValueError(
            f"the highway encoder reads Kinematics observations; env.kwargs asks for "
            f"{context.probe_env.unwrapped.config['observation'].get('type')!r}"
        )
    return KinematicsEncoder(KinematicsLayout.from_env(context.probe_env), d_model)


def make_reward_adapter(context: DomainContext) -> DrivingRewardAdapter:
    return DrivingRewardAdapter(has_destination="arrived_reward" in context.probe_env.unwrapped.config)


def action_names(context: DomainContext) -> list[str]:
    """highway-env's meta-action names (LANE_LEFT, IDLE, ...) when the action type has them."""
    actions = getattr(context.probe_env.unwrapped.action_type, "actions", None)
    if not isinstance(actions, dict):
        return [str(a) for a in range(context.probe_env.action_space.n)]
    return [actions[a] for a in sorted(actions)]


@hookimpl
def attnq_register_domains(registry) -> None:
    registry.add(
        DomainSpec(
            name="highway",
            description="Driving with highway-env: one token per observed vehicle, the ego vehicle first",
            make_env=make_env,
            make_encoder=make_encoder,
            make_reward_adapter=make_reward_adapter,
            baselines={"idle": IdlePolicy, "gap_keeper": GapKeeperPolicy},
            extra="highway",
            action_names=action_names,
            metrics=METRICS,
            libraries=("highway-env",),
        )
    )
