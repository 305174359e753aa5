"""Steps a gymnasium vector env with a policy and feeds the replay buffer.

The vector env runs in gymnasium 1.x ``SAME_STEP`` autoreset mode: when a sub-env's episode ends,
``info["final_obs"]`` holds its last observation and the returned observation is already the
first one of the next episode, so every step yields one valid transition.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from attnq.domain import EpisodeMetrics, RewardAdapter
from attnq.learning.dqn_loss import NOT_CREDITED
from attnq.learning.replay import NStepFolder, ReplayBuffer
from attnq.runtime import split_vector_info

SLATE_CHOICE_KEY = "slate_choice"


def credited_slate(action: np.ndarray, info: dict) -> np.ndarray:
    """The action as stored for learning. For a slate whose env reports ``info["slate_choice"]``
    (the slot the user chose; k or more for none), only the chosen item is credited (SlateQ)."""
    action = np.asarray(action)
    choice = info.get(SLATE_CHOICE_KEY)
    if action.ndim == 0 or choice is None or int(choice) >= len(action):
        return action
    credited = np.full_like(action, NOT_CREDITED)
    credited[0] = action[int(choice)]
    return credited


class ExperienceCollector:
    def __init__(
        self,
        vector_env: gym.vector.VectorEnv,
        reward_adapter: RewardAdapter,
        replay: ReplayBuffer,
        n_step_folder: NStepFolder,
    ) -> None:
        self.vector_env = vector_env
        self.reward_adapter = reward_adapter
        self.replay = replay
        self.n_step_folder = n_step_folder
        self.num_envs = vector_env.num_envs
        self.observations: np.ndarray | None = None
        self.episode_metrics: list[EpisodeMetrics] = []
        self.pending_actions: np.ndarray | None = None
        # AsyncVectorEnv can step in its workers while the learner runs a gradient update.
        self.can_overlap = isinstance(vector_env, gym.vector.AsyncVectorEnv)

    def reset(self, seed: int) -> None:
        observations, _ = self.vector_env.reset(seed=[seed + i for i in range(self.num_envs)])
        self.observations = np.asarray(observations, dtype=np.float32)
        self.episode_metrics = [self.reward_adapter.new_episode() for _ in range(self.num_envs)]
        self.n_step_folder.reset()

    def start_step(self, choose_actions: Callable[[np.ndarray], np.ndarray]) -> None:
        """Choose actions and send them; async workers simulate while the caller learns."""
        assert self.observations is not None, "call reset() first"
        self.pending_actions = np.asarray(choose_actions(self.observations))
        if self.can_overlap:
            self.vector_env.step_async(self.pending_actions)

    def finish_step(self, keep: int | None = None) -> list[dict[str, float]]:
        """Collect the step in flight; returns the metric summaries of episodes that ended in it.

        :param keep: learn from the first ``keep`` sub-envs' transitions only (the run's last step,
            so that it ends exactly at its env-step budget); the others' are dropped
        """
        actions = self.pending_actions
        if self.can_overlap:
            next_observations, rewards, terminated, truncated, infos = self.vector_env.step_wait()
        else:
            next_observations, rewards, terminated, truncated, infos = self.vector_env.step(actions)
        next_observations = np.asarray(next_observations, dtype=np.float32)
        finished: list[dict[str, float]] = []
        for i in range(self.num_envs if keep is None else keep):
            done = bool(terminated[i] or truncated[i])
            if done:
                info = split_vector_info(infos["final_info"], i) if "final_info" in infos else {}
                last_observation = np.asarray(infos["final_obs"][i], dtype=np.float32)
            else:
                info = split_vector_info(infos, i)
                last_observation = next_observations[i]
            reward = self.reward_adapter.training_reward(float(rewards[i]), info)
            action = credited_slate(actions[i], info)
            self.episode_metrics[i].add_step(float(rewards[i]), info)
            for transition in self.n_step_folder.push(
                i, self.observations[i], action, reward, last_observation, bool(terminated[i]), bool(truncated[i])
            ):
                self.replay.add(*transition)
            if done:
                finished.append(self.episode_metrics[i].summary())
                self.episode_metrics[i] = self.reward_adapter.new_episode()
        self.observations = next_observations
        self.pending_actions = None
        return finished

    def close(self) -> None:
        if self.pending_actions is not None and self.can_overlap:
            self.vector_env.step_wait()  # a step in flight must be collected before closing
        self.vector_env.close()
