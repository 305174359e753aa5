"""Consumed time as reward (RecSim NG's ``ConsumedTimeAsRewardMetrics``) and the domain's metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnq.domain import ReturnAndLength, SumRewardAdapter


class RecommendationEpisode(ReturnAndLength):
    """One user's episode: ``return`` is the cumulative consumed time; ``click_rate`` the share of
    slates the user consumed from; ``interest_drift`` how far the user's hidden interest moved toward
    nutritious topics and away from trashy ones (positive = toward nutritious);
    ``nutritious_click_rate`` the share of slates from which a nutritious document was consumed."""

    def __init__(self) -> None:
        super().__init__()
        self.clicks = 0
        self.nutritious_clicks = 0
        self.first_gap: float | None = None
        self.last_gap = 0.0

    def add_step(self, env_reward: float, info: Mapping[str, Any]) -> None:
        super().add_step(env_reward, info)
        gap = float(info["interest_nutritious_minus_trashy"])
        self.first_gap = gap if self.first_gap is None else self.first_gap
        self.last_gap = gap
        if bool(info["clicked"]):
            self.clicks += 1
            self.nutritious_clicks += int(bool(info["chosen_nutritious"]))

    def summary(self) -> dict[str, float]:
        result = super().summary()
        result["click_rate"] = self.clicks / max(self.length, 1)
        result["interest_drift"] = self.last_gap - (self.first_gap if self.first_gap is not None else self.last_gap)
        result["nutritious_click_rate"] = self.nutritious_clicks / max(self.length, 1)
        return result


class ConsumedTimeRewardAdapter(SumRewardAdapter):
    """Trains on RecSim NG's own reward (consumed time, 0 when nothing was consumed)."""

    metric_names = ("return", "length", "click_rate", "interest_drift", "nutritious_click_rate")

    def new_episode(self) -> RecommendationEpisode:
        return RecommendationEpisode()
