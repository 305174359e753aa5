"""The recommendation domain's task options (``domain_options:`` in a task file) and token layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CollabFilteringOptions(BaseModel):
    """How RecSim NG's own recommender is trained for the baseline (its own loop, its own objective)."""

    model_config = ConfigDict(extra="forbid")

    user_steps: int = Field(
        100_000,
        ge=1,
        description="simulated user-steps of training; set it to trainer.max_env_steps "
        "so the library's peer gets the agent's budget",
    )
    num_users: int = Field(100, ge=1, description="users simulated per training step (the library's global batch)")
    learning_rate: float = Field(
        1e-3, gt=0, description="SGD step size (the library's demo uses 1e-4 with 100x the steps)"
    )


class EcosystemOptions(BaseModel):
    """RecSim NG interest-evolution settings; defaults are the application's own."""

    model_config = ConfigDict(extra="forbid")

    num_docs: int = Field(100, ge=2, description="documents in the frozen corpus")
    num_topics: int = Field(2, ge=2, description="topics; the first 70 % are 'trashy' (negative quality)")
    slate_size: int = Field(2, ge=1, description="documents recommended per step")
    history_length: int = Field(15, ge=1, description="consumed documents the agent sees (the recommender's history)")
    horizon: int = Field(100, ge=1, description="slates per user episode")
    corpus_seed: int = Field(0, ge=0, description="seed of the frozen corpus, shared by training and evaluation")
    observe_quality: bool = Field(
        False,
        description="show each document's quality to the agent (RecSim's users see it; "
        "the recommender normally infers it from consumed time)",
    )
    document_identity: bool = Field(
        True,
        description="give each document a learned identity embedding; without it a "
        "document is known only by its features (and the history)",
    )
    attend_to: Literal["all", "history"] = Field(
        "all",
        description="what the Transformer's tokens attend to: every token, or the consumed history alone "
        "(documents scored against the history, not each other; attention over 16 keys instead of 116)",
    )
    collab_filtering: CollabFilteringOptions = Field(default_factory=CollabFilteringOptions)

    @property
    def num_trashy_topics(self) -> int:
        """RecSim NG's corpus makes the first 70 % of topics "trashy" (negative mean quality)."""
        return int(self.num_topics * 0.7)


@dataclass(frozen=True)
class TokenLayout:
    """Rows and columns of one observation: ``num_docs`` candidate rows, then ``history_length`` rows.

    Columns: present, is-history, the document's topic features, its quality (0 when hidden), the
    consumed time (history rows) and the document's index in the corpus.
    """

    num_docs: int
    num_topics: int
    history_length: int

    PRESENT = 0
    IS_HISTORY = 1
    FEATURES = 2

    @classmethod
    def of(cls, options: EcosystemOptions) -> TokenLayout:
        return cls(options.num_docs, options.num_topics, options.history_length)

    @property
    def quality(self) -> int:
        return self.FEATURES + self.num_topics

    @property
    def consumed_time(self) -> int:
        return self.quality + 1

    @property
    def doc_index(self) -> int:
        return self.quality + 2

    @property
    def num_columns(self) -> int:
        return self.quality + 3

    @property
    def num_rows(self) -> int:
        return self.num_docs + self.history_length

    @property
    def history_rows(self) -> slice:
        return slice(self.num_docs, self.num_rows)
