"""Driving baselines that read only the observation, like the agent.

* ``idle``: keep lane at the current speed (highway-env's IDLE meta-action). It never brakes, so it
  runs into slower traffic ahead: a floor, not a competitor.
* ``gap_keeper``: a time-headway rule. Keep at least ``HEADWAY_S`` seconds to the vehicle ahead in
  the lane; when it is closer, move to an adjacent lane that is clear or slow down; with a long
  clear gap, speed up. Where the actions hold no lane changes (intersection) there are no lanes to
  reason about: slow down while any vehicle is within ``CLEAR_RADIUS_M``, speed up otherwise.
"""

from __future__ import annotations

import numpy as np

from attnq.domain import DomainContext
from attnq_highway.encoder import LANE_WIDTH_M, KinematicsLayout

HEADWAY_S = 1.5
MIN_GAP_M = 10.0
BEHIND_MARGIN_M = 8.0
CLEAR_RADIUS_M = 25.0


class IdlePolicy:
    def __init__(self, context: DomainContext, seed: int) -> None:
        self.idle = context.probe_env.unwrapped.action_type.actions_indexes["IDLE"]

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return np.full(len(observations), self.idle, dtype=np.int64)


class GapKeeperPolicy:
    def __init__(self, context: DomainContext, seed: int) -> None:
        self.layout = KinematicsLayout.from_env(context.probe_env)
        self.actions = dict(context.probe_env.unwrapped.action_type.actions_indexes)

    def _lane_clear(self, others: list[tuple[float, float]], lane_offset: int, gap_m: float) -> bool:
        centre = lane_offset * LANE_WIDTH_M
        return not any(abs(dy - centre) < LANE_WIDTH_M / 2 and -BEHIND_MARGIN_M < dx < gap_m for dx, dy in others)

    def _act(self, observation: np.ndarray) -> int:
        others = [(dx, dy) for _, dx, dy in filter(None, self.layout.relative_positions(observation))]
        if not self.layout.lane_changes:  # no lanes to reason about (e.g. intersection): keep a radius clear
            blocked = any(np.hypot(dx, dy) < CLEAR_RADIUS_M for dx, dy in others)
            return self.actions["SLOWER" if blocked else "FASTER"]
        speed = self.layout.physical(observation[0], "vx")
        safe_gap = max(MIN_GAP_M, HEADWAY_S * speed)
        if self._lane_clear(others, 0, 2 * safe_gap):
            return self.actions.get("FASTER", self.actions["IDLE"])
        if self._lane_clear(others, 0, safe_gap):
            return self.actions["IDLE"]
        for name, offset in (("LANE_LEFT", -1), ("LANE_RIGHT", 1)):
            if name in self.actions and self._lane_clear(others, offset, safe_gap):
                return self.actions[name]
        return self.actions.get("SLOWER", self.actions["IDLE"])

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return np.array([self._act(o) for o in observations], dtype=np.int64)
