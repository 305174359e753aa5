"""Driving reward adapter: train on highway-env's own (normalised) reward; report crash, speed, arrival."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnq.domain import ReturnAndLength, SumRewardAdapter


class DrivingEpisode(ReturnAndLength):
    """return, length, crashed (0/1), mean_speed (m/s); arrived and success where the env reports arrival."""

    def __init__(self) -> None:
        super().__init__()
        self.crashed = False
        self.speed_sum = 0.0
        self.arrived: bool | None = None

    def add_step(self, env_reward: float, info: Mapping[str, Any]) -> None:
        super().add_step(env_reward, info)
        self.crashed = self.crashed or bool(info.get("crashed", False))
        self.speed_sum += float(info.get("speed", 0.0))
        rewards = info.get("rewards") or {}
        if "arrived_reward" in rewards:
            self.arrived = bool(self.arrived) or float(rewards["arrived_reward"]) > 0

    def summary(self) -> dict[str, float]:
        result = super().summary()
        result["crashed"] = float(self.crashed)
        result["mean_speed"] = self.speed_sum / max(self.length, 1)
        if self.arrived is not None:
            result["arrived"] = float(self.arrived)
            result["success"] = float(self.arrived and not self.crashed)
        return result


METRICS = {
    "return": "sum of highway-env's normalised rewards (speed, lane, collision) over an episode",
    "crashed": "share of episodes that ended in a collision",
    "mean_speed": "mean ego speed, m/s",
    "arrived": "share of episodes that reached the destination (intersection)",
    "success": "share of episodes that arrived without a collision (intersection)",
}


class DrivingRewardAdapter(SumRewardAdapter):
    """Trains on the env reward itself; only the episode metrics are the domain's own.

    :param has_destination: the env rewards arriving (intersection), so episodes report
        ``arrived`` and ``success``
    """

    def __init__(self, has_destination: bool = False) -> None:
        self.metric_names = ("return", "length", "crashed", "mean_speed") + (
            ("arrived", "success") if has_destination else ()
        )

    def new_episode(self) -> DrivingEpisode:
        return DrivingEpisode()
