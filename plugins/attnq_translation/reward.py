"""Training reward = token reward x tokens right + (optionally) a sentence score when it ends.

The env's own reward is position-aligned token correctness; ``domain_options`` choose how much of it
to use and which sentence score (exact match, BLEU, chrF) to add at the end of each sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnq.domain import ReturnAndLength
from attnq_translation.options import TranslationOptions

SENTENCE_METRICS = ("exact_match", "token_accuracy", "bleu", "chrf")


METRICS = {
    "return": "words written at their right position, the end included",
    "length": "words written, the end included",
    "exact_match": "share of sentences written exactly",
    "token_accuracy": "share of the reference's words written at their position",
    "bleu": "sentence BLEU against the reference (sacrebleu), 0 to 1",
    "chrf": "sentence chrF against the reference (sacrebleu), 0 to 1",
}


class TranslationEpisode(ReturnAndLength):
    """return (tokens right), length (words written + end), exact_match, token_accuracy, bleu, chrf."""

    def __init__(self) -> None:
        super().__init__()
        self.sentence: dict[str, float] = {}

    def add_step(self, env_reward: float, info: Mapping[str, Any]) -> None:
        super().add_step(env_reward, info)
        if "exact_match" in info:
            self.sentence = {name: float(info[name]) for name in SENTENCE_METRICS}

    def summary(self) -> dict[str, float]:
        return {**super().summary(), **self.sentence}


class TranslationRewardAdapter:
    metric_names = ("return", "length", *SENTENCE_METRICS)

    def __init__(self, options: TranslationOptions) -> None:
        self.token_reward = options.token_reward
        self.sentence_reward = options.sentence_reward
        self.sentence_reward_weight = options.sentence_reward_weight

    def training_reward(self, env_reward: float, info: Mapping[str, Any]) -> float:
        reward = self.token_reward * float(env_reward)
        if self.sentence_reward != "none" and self.sentence_reward in info:
            reward += self.sentence_reward_weight * float(info[self.sentence_reward])
        return reward

    def new_episode(self) -> TranslationEpisode:
        return TranslationEpisode()
