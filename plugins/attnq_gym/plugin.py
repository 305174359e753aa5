"""The generic domain: any registered gymnasium env with a ``Box`` observation and ``Discrete``
actions, one token per observation feature; or a ``Dict`` of ``Box`` observations, one token per key.

``attnq train gym:CartPole-v1`` trains it from the domain's default task (``make_task``); a task
file (``domain: gym``) sets everything, feature names included (``domain_options.feature_names``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from attnq import DomainContext, DomainSpec, StateEncoder, SumRewardAdapter, Tokens, hookimpl
from attnq.errors import TaskFileError

# a bound this large is no bound (some envs write float32's largest value for "unbounded")
UNBOUNDED = 1e6


class GymOptions(BaseModel):
    """The task file's ``domain_options`` for the gym domain."""

    model_config = ConfigDict(extra="forbid")
    feature_names: list[str] = Field(
        default_factory=list,
        description="a name per observation feature (per key of a Dict observation), for attention pictures",
    )
    normalize: Literal["none", "bounds", "sample"] = Field(
        "none",
        description="observations as they are; bounds: each bounded feature to [-1, 1]; sample: mean 0, std 1 "
        "over random-action steps",
    )
    normalize_steps: int = Field(2000, ge=10, description="normalize: sample - how many random-action env steps")


def key_sizes(space: gym.Space) -> dict[str, int] | None:
    """Features per key of a ``Dict`` of ``Box`` observation, in the order gymnasium flattens it."""
    if not isinstance(space, gym.spaces.Dict):
        return None
    return {key: int(np.prod(sub.shape)) for key, sub in space.spaces.items()}


def dict_space(env: gym.Env) -> gym.Space | None:
    """The Dict observation space that ``make_env`` flattened, if it did."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.FlattenObservation):
            return env.env.observation_space
        env = env.env
    return None


def make_env(env_id: str, env_kwargs: Mapping[str, Any], options: GymOptions) -> gym.Env:
    env = gym.make(env_id, **dict(env_kwargs))
    observation, action = env.observation_space, env.action_space
    boxes = isinstance(observation, gym.spaces.Dict) and all(
        isinstance(sub, gym.spaces.Box) for sub in observation.spaces.values()
    )
    if not (isinstance(observation, gym.spaces.Box) or boxes) or not isinstance(action, gym.spaces.Discrete):
        env.close()
        raise gym.error.Error(
            f"{env_id} has {observation} observations and {action} actions; the gym domain takes a Box (or a "
            "Dict of Box) observation and Discrete actions"
        )
    if boxes:  # one flat array, as replay buffers store it; the encoder splits it back by key
        env = gym.wrappers.FlattenObservation(env)
    features = len(key_sizes(observation) or {}) or int(np.prod(observation.shape))
    if options.feature_names and len(options.feature_names) != features:
        env.close()
        raise TaskFileError(
            f"field 'domain_options.feature_names' has {len(options.feature_names)} names, but {env_id} has "
            f"{features} observation features; fix: give one name per feature, or none"
        )
    if options.normalize == "none":
        return env
    center, scale = observation_scale(env, env_id, env_kwargs, options)
    space = env.observation_space
    normalized = gym.spaces.Box(
        ((space.low - center) / scale).astype(np.float32), ((space.high - center) / scale).astype(np.float32)
    )
    return gym.wrappers.TransformObservation(
        env, lambda x: ((np.asarray(x, np.float64) - center) / scale).astype(np.float32), normalized
    )


def observation_scale(
    env: gym.Env, env_id: str, env_kwargs: Mapping[str, Any], options: GymOptions
) -> tuple[np.ndarray, np.ndarray]:
    """``(center, scale)`` per feature, so that ``(x - center) / scale`` is normalised.

    ``bounds``: the middle and half-width of each feature's finite bounds (a feature without them is
    left as it is). ``sample``: the mean and standard deviation over ``normalize_steps`` random-action
    steps of a fresh env on fixed seeds, the same wherever the env is made (training, evaluation, a
    reloaded agent), so they need not be saved with the network. The fresh env keeps its registered
    time limit, so an evaluation env cut shorter (``max_episode_steps``) is scaled as training's is."""
    space = env.observation_space
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if options.normalize == "bounds":
        bounded = (np.abs(low) < UNBOUNDED) & (np.abs(high) < UNBOUNDED) & (high > low)
        low, high = np.where(bounded, low, -1.0), np.where(bounded, high, 1.0)  # unbounded: left as it is
        return (low + high) / 2, (high - low) / 2
    probe = gym.make(env_id, **{key: value for key, value in env_kwargs.items() if key != "max_episode_steps"})
    if isinstance(probe.observation_space, gym.spaces.Dict):
        probe = gym.wrappers.FlattenObservation(probe)
    probe.action_space.seed(0)
    observation, _ = probe.reset(seed=0)
    seen = [observation]
    for episode in range(1, options.normalize_steps):
        observation, _, terminated, truncated, _ = probe.step(probe.action_space.sample())
        if terminated or truncated:
            observation, _ = probe.reset(seed=episode)
        seen.append(observation)
    probe.close()
    values = np.asarray(seen, np.float64).reshape(len(seen), -1)
    std = values.std(axis=0)
    return values.mean(axis=0), np.where(std > 1e-8, std, 1.0)


class FeatureEncoder(StateEncoder):
    """One token per observation feature: its own bias plus its value times its own direction (the
    numerical-feature tokens of FT-Transformer, Gorishniy et al. 2021)."""

    def __init__(self, names: list[str], d_model: int) -> None:
        super().__init__(d_model)
        self.names = names
        self.num_tokens = len(names)
        self.bias = nn.Parameter(torch.randn(len(names), d_model) * 0.5)
        self.weight = nn.Parameter(torch.randn(len(names), d_model) * 0.5)

    def forward(self, observations_BX: torch.Tensor) -> Tokens:
        values_BT1 = observations_BX.reshape(len(observations_BX), -1).unsqueeze(-1)
        mask_BT = torch.ones(values_BT1.shape[:2], dtype=torch.bool, device=observations_BX.device)
        return Tokens(self.bias + values_BT1 * self.weight, mask_BT)

    def token_labels(self, observation: np.ndarray) -> list[str]:
        values = np.asarray(observation, dtype=np.float32).reshape(-1)
        return [f"{name} {value:+.2f}" for name, value in zip(self.names, values)]


class KeyEncoder(StateEncoder):
    """One token per key of a ``Dict`` observation: the key's features through a linear map of its
    own, plus the key's embedding."""

    def __init__(self, sizes: dict[str, int], names: list[str], d_model: int) -> None:
        super().__init__(d_model)
        self.sizes, self.names = list(sizes.values()), names
        self.num_tokens = len(sizes)
        self.projections = nn.ModuleList(nn.Linear(size, d_model) for size in self.sizes)
        self.key_embedding = nn.Parameter(torch.randn(len(sizes), d_model) * 0.5)

    def forward(self, observations_BX: torch.Tensor) -> Tokens:
        parts = torch.split(observations_BX.reshape(len(observations_BX), -1), self.sizes, dim=1)
        embeddings_BTD = torch.stack([project(part) for project, part in zip(self.projections, parts)], dim=1)
        mask_BT = torch.ones(embeddings_BTD.shape[:2], dtype=torch.bool, device=observations_BX.device)
        return Tokens(embeddings_BTD + self.key_embedding, mask_BT)

    def token_labels(self, observation: np.ndarray) -> list[str]:
        parts = np.split(np.asarray(observation, dtype=np.float32).reshape(-1), np.cumsum(self.sizes)[:-1])
        return [f"{name} {part.mean():+.2f}" for name, part in zip(self.names, parts)]


def make_encoder(context: DomainContext, d_model: int) -> StateEncoder:
    names = list(context.options.feature_names)
    sizes = key_sizes(dict_space(context.probe_env))
    if sizes is not None:
        return KeyEncoder(sizes, names or list(sizes), d_model)
    features = int(np.prod(context.probe_env.observation_space.shape))
    return FeatureEncoder(names or [f"x{i}" for i in range(features)], d_model)


def make_reward_adapter(context: DomainContext) -> SumRewardAdapter:
    return SumRewardAdapter()


def make_task(env_id: str) -> dict[str, Any]:
    """The task ``attnq train gym:ENV_ID`` trains: small defaults that suit a cheap control env."""
    return {
        "name": env_id.lower().replace("/", "-"),
        "domain": "gym",
        "description": f"{env_id} (gymnasium), one token per observation feature",
        "env": {"id": env_id, "num_envs": 4, "vectorization": "sync"},
        # features scaled by random-action steps: CartPole's cart position, small under random play,
        # grows large as the cart drifts out (>= 475 on 14 of 15 seeds, 12 unscaled)
        "domain_options": {"normalize": "sample"},
        "model": {"d_model": 32, "layers": 1, "heads": 2, "feedforward_dim": 64, "pool": "cls"},
        # 3-step returns and advantage learning's wider action gaps (alpha 0.9, Bellemare et al. 2016),
        # with 30-episode validation rounds every 2.5k steps (docs/experiments/2026-12-02-gym-cartpole.md)
        "replay": {"capacity": 50000, "batch_size": 64, "n_step": 3},
        "learner": {
            "gamma": 0.99,
            "lr": 0.0005,
            "target_update_interval": 500,
            "learning_starts": 1000,
            "advantage_learning": 0.9,
        },
        "exploration": {"decay_fraction": 0.2},
        "trainer": {"max_env_steps": 50000, "checkpoint_every_env_steps": 10000},
        # DQN's greedy policy swings between checkpoints: the best validated one is kept
        "eval": {
            "episodes": 100,
            "seed": 10000,
            "every_env_steps": 2500,
            "episodes_during_training": 30,
            "keep_best": True,
        },
    }


@hookimpl
def attnq_register_domains(registry):
    registry.add(
        DomainSpec(
            name="gym",
            description="any gymnasium env with a Box (or Dict of Box) observation and Discrete actions",
            make_env=make_env,
            make_encoder=make_encoder,
            make_reward_adapter=make_reward_adapter,
            options_model=GymOptions,
            make_task=make_task,
            metrics={"return": "sum of the env's rewards over an episode"},
            libraries=("gymnasium",),
        )
    )
