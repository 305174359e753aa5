"""Driving baselines that read only the observation, like the agent.

* ``idle``: keep lane at the current speed (highway-env's IDLE meta-action).
* ``gap_keeper``: speed up while the lane ahead is clear, otherwise move to a clear adjacent lane
  (when lane changes exist) or slow down.
"""

from __future__ import annotations

import numpy as np

from attnq.domain import DomainContext
from attnq_highway.encoder import LANE_WIDTH_M, KinematicsLayout

SAFE_GAP_M = 25.0
BEHIND_MARGIN_M = 8.0


class IdlePolicy:
    def __init__(self, context: DomainContext, seed: int) -> None:
        self.idle = context.probe_env.unwrapped.action_type.actions_indexes["IDLE"]

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return np.full(len(observations), self.idle, dtype=np.int64)


class GapKeeperPolicy:
    def __init__(self, context: DomainContext, seed: int) -> None:
        self.layout = KinematicsLayout.from_env(context.probe_env)
        self.actions = dict(context.probe_env.unwrapped.action_type.actions_indexes)

    def _others(self, observation: np.ndarray) -> list[tuple[float, float]]:
        layout, ego = self.layout, observation[0]
        others = []
        for row in observation[1:]:
            if row[0] <= 0.5:
                continue
            dx, dy = layout.physical(row, "x"), layout.physical(row, "y")
            if layout.absolute:
                dx, dy = dx - layout.physical(ego, "x"), dy - layout.physical(ego, "y")
            others.append((dx, dy))
        return others

    def _lane_clear(self, others: list[tuple[float, float]], lane_offset: int) -> bool:
        centre = lane_offset * LANE_WIDTH_M
        return not any(abs(dy - centre) < LANE_WIDTH_M / 2 and -BEHIND_MARGIN_M < dx < SAFE_GAP_M for dx, dy in others)

    def _act(self, observation: np.ndarray) -> int:
        others = self._others(observation)
        if self.layout.absolute:  # no lanes to reason about (e.g. intersection): keep a radius clear
            blocked = any(np.hypot(dx, dy) < SAFE_GAP_M for dx, dy in others)
            return self.actions["SLOWER" if blocked else "FASTER"]
        if self._lane_clear(others, 0):
            return self.actions.get("FASTER", self.actions["IDLE"])
        for name, offset in (("LANE_LEFT", -1), ("LANE_RIGHT", 1)):
            if name in self.actions and self._lane_clear(others, offset):
                return self.actions[name]
        return self.actions.get("SLOWER", self.actions["IDLE"])

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return np.array([self._act(o) for o in observations], dtype=np.int64)
