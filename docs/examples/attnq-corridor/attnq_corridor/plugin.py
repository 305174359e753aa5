"""A complete attnq domain in one file: environment, state encoder, reward adapter, baseline."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from attnq import DomainContext, DomainSpec, StateEncoder, SumRewardAdapter, Tokens, hookimpl


class CorridorOptions(BaseModel):
    """Validated from the task file's ``domain_options`` block."""

    model_config = ConfigDict(extra="forbid")
    length: int = Field(6, ge=2)


class CorridorEnv(gym.Env):
    """Cells 0..length-1; start at 0, goal at the last cell. Actions: 0 = left, 1 = right.

    Observation: one row per cell, ``[is_agent, is_goal]``. Reward 1 at the goal, -0.01 per step.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(length, 2), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0
        self.steps = 0

    def _observation(self) -> np.ndarray:
        cells = np.zeros((self.length, 2), dtype=np.float32)
        cells[self.position, 0] = 1.0
        cells[-1, 1] = 1.0
        return cells

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position, self.steps = 0, 0
        return self._observation(), {}

    def step(self, action):
        self.position = int(np.clip(self.position + (1 if action == 1 else -1), 0, self.length - 1))
        self.steps += 1
        at_goal = self.position == self.length - 1
        reward = 1.0 if at_goal else -0.01
        return self._observation(), reward, at_goal, self.steps >= 4 * self.length, {}


class CellEncoder(StateEncoder):
    """One token per cell: its two features plus a learned position embedding."""

    def __init__(self, length: int, d_model: int) -> None:
        super().__init__(d_model)
        self.num_tokens = length
        self.features = nn.Linear(2, d_model)
        self.positions = nn.Embedding(length, d_model)

    def forward(self, observations_BX: torch.Tensor) -> Tokens:
        embeddings_BTD = self.features(observations_BX) + self.positions.weight
        mask_BT = torch.ones(observations_BX.shape[:2], dtype=torch.bool, device=observations_BX.device)
        return Tokens(embeddings_BTD, mask_BT)

    def token_labels(self, observation: np.ndarray) -> list[str]:
        return [
            f"cell {i}" + (" (agent)" if row[0] else "") + (" (goal)" if row[1] else "")
            for i, row in enumerate(observation)
        ]


def make_env(env_id, env_kwargs, options: CorridorOptions) -> gym.Env:
    return CorridorEnv(options.length)


class AlwaysRight:
    def __init__(self, context: DomainContext, seed: int) -> None:
        pass

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return np.ones(len(observations), dtype=np.int64)


@hookimpl
def attnq_register_domains(registry) -> None:
    registry.add(
        DomainSpec(
            name="corridor",
            description="Example plugin: walk to the end of a corridor",
            make_env=make_env,
            make_encoder=lambda context, d_model: CellEncoder(context.options.length, d_model),
            make_reward_adapter=lambda context: SumRewardAdapter(),
            baselines={"always_right": AlwaysRight},
            options_model=CorridorOptions,
            task_dirs=(Path(__file__).parent / "tasks",),
        )
    )
