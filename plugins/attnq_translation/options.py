"""The translation domain's ``domain_options``: which corpus, and how sentences are rewarded."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from attnq_translation import scan
from attnq_translation.corpus import FileFormat, HeldOut, ParallelCorpus, load_pairs

SentenceReward = Literal["none", "exact_match", "bleu", "chrf"]
TargetPositions = Literal["absolute", "relative", "recurrent"]
RepetitionFeature = Literal["period", "units", "phase"]
REPETITION_FEATURES: tuple[RepetitionFeature, ...] = ("period", "units", "phase")


class TranslationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus: Literal["scan-simple", "scan-length", "scan-jump", "files"] = Field(
        "scan-simple", description="SCAN generated in code (simple, length or add-primitive jump split), or your files"
    )
    split_seed: int = Field(0, ge=0, description="seed of the simple split's 80/20 cut and of the validation draw")
    validation_pairs: int = Field(
        0, ge=0, description="training pairs held out as the validation part (env part: validation)"
    )
    validation_from: HeldOut = Field(
        "random",
        description="which training pairs are held out: a seeded draw, those with the longest outputs, or those "
        "with the longest run of one repeated unit (a length split inside training)",
    )
    train_file: Path | None = Field(None, description="corpus: files - training pairs (SCAN 'IN: .. OUT: ..' or TSV)")
    test_file: Path | None = Field(None, description="corpus: files - held-out pairs for evaluation")
    file_format: FileFormat = "auto"
    # absolute positions past the longest training output are never trained (scan-length tests 24-48 words)
    target_positions: TargetPositions = Field(
        "absolute",
        description="written words by their position, their distance back from the word to write, or an LSTM's state",
    )
    relative_clip: int = Field(16, ge=1, description="relative: distances beyond this share one embedding")
    occurrence_counts: bool = Field(
        False, description="each written word also carries how many times its word has been written up to it"
    )
    repetition_period: int = Field(
        0,
        ge=0,
        description="if > 0: each written word also carries the repeated unit (up to this many words) it continues, "
        "how many units so far and its place in the unit",
    )
    repetition_features: tuple[RepetitionFeature, ...] = Field(
        REPETITION_FEATURES,
        min_length=1,
        description="which of the repetition's period, unit count and place in the unit the written words carry",
    )
    period_tokens: bool = Field(
        False,
        description="with repetition_period: one token per period carrying the last written word's run at that period "
        "(whole units, place in the unit)",
    )
    block_tokens: bool = Field(
        False,
        description="with repetition_period: as period_tokens, but token m reads the run at m units of the last "
        "written word's repetition (whole m-unit blocks, place in the block in units), so blocks count alike "
        "whatever their unit's length",
    )
    written_word_dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="while training, each written word's identity is hidden with this probability (its position and "
        "repetition kept), so the agent also decides from the command and the counts",
    )
    hide_written_words: bool = Field(
        False,
        description="the written words carry their position and repetition counts only, never which word they are "
        "(in training and evaluation), so every decision is read from the command and the counts",
    )
    copy_actions: int = Field(
        0,
        ge=0,
        le=16,
        description="if > 0: actions that append a copy of the last k written words (k = 1 up to this) and one that "
        "makes the previous copy again; a copy is rewarded with its words when all are right",
    )
    token_reward: float = Field(1.0, ge=0.0, description="reward per target token written at its correct position")
    sentence_reward: SentenceReward = Field("none", description="score added when the sentence ends")
    sentence_reward_weight: float = Field(1.0, ge=0.0)

    @model_validator(mode="after")
    def _files_given_for_files_corpus(self) -> TranslationOptions:
        if self.corpus == "files" and (self.train_file is None or self.test_file is None):
            raise ValueError("corpus 'files' needs both train_file and test_file")
        if self.corpus != "files" and (self.train_file or self.test_file):
            raise ValueError(f"train_file/test_file are read only with corpus: files (corpus is {self.corpus!r})")
        for name in ("period_tokens", "block_tokens"):
            if getattr(self, name) and not self.repetition_period:
                raise ValueError(f"{name} reads the periods up to repetition_period; set repetition_period > 0")
        if self.period_tokens and self.block_tokens:
            raise ValueError("period_tokens and block_tokens fill the same tokens; set one of them")
        if self.hide_written_words and self.written_word_dropout:
            raise ValueError("written_word_dropout hides words that hide_written_words already hides; set one of them")
        if self.token_reward == 0.0 and (self.sentence_reward == "none" or self.sentence_reward_weight == 0.0):
            raise ValueError("every reward is switched off; set token_reward > 0 or choose a sentence_reward")
        return self


@lru_cache(maxsize=8)
def build_corpus(options: TranslationOptions) -> ParallelCorpus:
    """The corpus the options name; cached so the many envs of one process share it."""
    if options.corpus == "scan-simple":
        train, test = scan.simple_split(options.split_seed)
    elif options.corpus == "scan-length":
        train, test = scan.length_split()
    elif options.corpus == "scan-jump":
        train, test = scan.add_primitive_split("jump")
    else:
        train = load_pairs(options.train_file, options.file_format)
        test = load_pairs(options.test_file, options.file_format)
    return ParallelCorpus.from_parts(train, test, options.validation_pairs, options.split_seed, options.validation_from)
