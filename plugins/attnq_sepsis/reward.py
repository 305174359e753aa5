"""Survival reward (1 on survival, 0 on death, as the package defines it) and treatment metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnq.domain import ReturnAndLength, SumRewardAdapter


class SepsisEpisode(ReturnAndLength):
    """return, length, survived (0/1), mean fluid and vasopressor dose levels (0-4)."""

    def __init__(self) -> None:
        super().__init__()
        self.fluid_sum = 0
        self.vasopressor_sum = 0

    def add_step(self, env_reward: float, info: Mapping[str, Any]) -> None:
        super().add_step(env_reward, info)
        self.fluid_sum += int(info.get("fluid_level", 0))
        self.vasopressor_sum += int(info.get("vasopressor_level", 0))

    def summary(self) -> dict[str, float]:
        result = super().summary()
        steps = max(self.length, 1)
        result["survived"] = float(self.episode_return > 0.5)
        result["mean_fluid_level"] = self.fluid_sum / steps
        result["mean_vasopressor_level"] = self.vasopressor_sum / steps
        return result


METRICS = {
    "return": "1 if the patient survived, 0 if not (ICU-Sepsis's reward), averaged over patients",
    "survived": "share of patients who survived",
    "mean_fluid_level": "mean IV fluid dose level chosen, 0 (none) to 4",
    "mean_vasopressor_level": "mean vasopressor dose level chosen, 0 (none) to 4",
}


class SurvivalRewardAdapter(SumRewardAdapter):
    """Trains on the env reward itself; only the episode metrics are the domain's own."""

    metric_names = ("return", "length", "survived", "mean_fluid_level", "mean_vasopressor_level")

    def new_episode(self) -> SepsisEpisode:
        return SepsisEpisode()
