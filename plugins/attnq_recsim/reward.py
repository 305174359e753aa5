"""Consumed time as reward (RecSim NG's ``ConsumedTimeAsRewardMetrics``) and the domain's metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnq.domain import ReturnAndLength, SumRewardAdapter

METRICS = {
    "return": "consumed time over the episode's slates (RecSim NG's reward)",
    "length": "slates recommended",
    "click_rate": "share of slates from which the user consumed a document",
    "consumed_quality": "mean RecSim NG quality of the consumed documents: its 'trashy' topics have negative "
    "mean quality (more engaging now, worse for the user later), its 'nutritious' ones non-negative",
    "nutritious_click_rate": "share of slates from which a document of a nutritious topic was consumed",
}


class RecommendationEpisode(ReturnAndLength):
    """One user's episode; see :data:`METRICS` for what each figure means."""

    def __init__(self) -> None:
        super().__init__()
        self.clicks = 0
        self.nutritious_clicks = 0
        self.quality = 0.0

    def add_step(self, env_reward: float, info: Mapping[str, Any]) -> None:
        super().add_step(env_reward, info)
        if bool(info["clicked"]):
            self.clicks += 1
            self.nutritious_clicks += int(bool(info["chosen_nutritious"]))
            self.quality += float(info["consumed_quality"])

    def summary(self) -> dict[str, float]:
        result = super().summary()
        result["click_rate"] = self.clicks / max(self.length, 1)
        result["consumed_quality"] = self.quality / max(self.clicks, 1)
        result["nutritious_click_rate"] = self.nutritious_clicks / max(self.length, 1)
        return result


class ConsumedTimeRewardAdapter(SumRewardAdapter):
    """Trains on RecSim NG's own reward (consumed time, 0 when nothing was consumed)."""

    metric_names = tuple(METRICS)

    def new_episode(self) -> RecommendationEpisode:
        return RecommendationEpisode()
