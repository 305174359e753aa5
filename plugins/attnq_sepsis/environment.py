"""ICU-Sepsis as an attnq environment: a flat float observation the encoder can split.

The package's own observation is the discrete state id (716 states). attnq needs what a clinician
would see, so the wrapper builds ``[47 clinical features | 25 admissible-action flags | state id]``:
the encoder reads the features, the action mask reads the flags, and only the value-iteration and
clinician baselines read the state id (the Q-network never does).
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from attnq_sepsis.features import NUM_FEATURES

NUM_ACTIONS = 25
DOSE_LEVELS = 5  # action = 5 * fluid_level + vasopressor_level (the package's FlattenActionWrapper)
ADMISSIBLE_SLICE = slice(NUM_FEATURES, NUM_FEATURES + NUM_ACTIONS)
STATE_ID_INDEX = NUM_FEATURES + NUM_ACTIONS
OBSERVATION_SIZE = STATE_ID_INDEX + 1


def import_icu_sepsis() -> None:
    """icu-sepsis imports the unmaintained ``gym`` only to register a legacy id; silence its notice
    (a warning) and the banner gym prints to stderr on import."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        import icu_sepsis  # noqa: F401  (registers Sepsis/ICU-Sepsis-v*)


class ClinicalObservation(gym.Wrapper):
    """Observation = features + admissible flags + state id; info gains the dose levels given."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(OBSERVATION_SIZE,), dtype=np.float32)

    @staticmethod
    def _observation(state: int, info: dict[str, Any]) -> np.ndarray:
        observation = np.zeros(OBSERVATION_SIZE, dtype=np.float32)
        observation[:NUM_FEATURES] = info["state_vector"]
        observation[NUM_FEATURES + np.asarray(info["admissible_actions"], dtype=np.int64)] = 1.0
        observation[STATE_ID_INDEX] = state
        return observation

    def reset(self, **kwargs):
        state, info = self.env.reset(**kwargs)
        # the package's info holds views of the MDP tables every env of a process shares: a caller
        # that changed them would change the MDP, so each call returns copies
        info = copy.deepcopy(info)
        return self._observation(state, info), info

    def step(self, action):
        state, reward, terminated, truncated, info = self.env.step(action)
        info = copy.deepcopy(info)  # see reset
        info.update(fluid_level=int(action) // DOSE_LEVELS, vasopressor_level=int(action) % DOSE_LEVELS)
        return self._observation(state, info), reward, terminated, truncated, info


def state_ids(observations: np.ndarray) -> np.ndarray:
    return np.asarray(observations)[..., STATE_ID_INDEX].astype(np.int64)


def observations_for_states(env: gym.Env, states: np.ndarray) -> np.ndarray:
    """The wrapper's observation for each given state id, built from the package's own tables."""
    unwrapped = env.unwrapped
    admissible = unwrapped.dynamics["admissible_actions"]
    observations = np.zeros((len(states), OBSERVATION_SIZE), dtype=np.float32)
    observations[:, :NUM_FEATURES] = unwrapped.state_cluster_centers[states]
    for row, state in enumerate(states):
        observations[row, NUM_FEATURES + np.asarray(admissible[state], dtype=np.int64)] = 1.0
    observations[:, STATE_ID_INDEX] = states
    return observations
