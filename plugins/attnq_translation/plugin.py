"""The text-as-action translation domain, registered through the ``attnq.plugins`` entry point."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from attnq import DomainContext, DomainSpec, hookimpl
from attnq.errors import TaskFileError
from attnq.runtime import task_env_kwargs
from attnq_translation.corpus import PARTS
from attnq_translation.encoder import SentenceEncoder
from attnq_translation.environment import TextAsActionEnv, copy_action_names
from attnq_translation.options import TranslationOptions, build_corpus
from attnq_translation.reward import METRICS, TranslationRewardAdapter

ENV_ID = "TextAsAction-v0"


def make_env(env_id: str, env_kwargs: Mapping[str, Any], options: TranslationOptions) -> gym.Env:
    if env_id != ENV_ID:
        raise gym.error.Error(f"the translation domain builds {ENV_ID!r} only; the corpus is chosen in domain_options")
    unknown = set(env_kwargs) - {"part", "oracle_length"}
    if unknown:
        raise ValueError(
            f"unknown env kwargs {sorted(unknown)}; {ENV_ID} takes part: {' | '.join(PARTS)} and oracle_length: bool"
        )
    oracle_length = env_kwargs.get("oracle_length", False)
    if not isinstance(oracle_length, bool):
        raise ValueError(f"oracle_length must be true or false, got {oracle_length!r}")
    # the env takes its part from the corpus, which refuses an unknown or empty one with the fix
    return TextAsActionEnv(build_corpus(options), env_kwargs.get("part", "train"), oracle_length, options.copy_actions)


def check_task(task, context: DomainContext) -> None:
    """Evaluation episode i scores test pair i (mod the test part's size), so more episodes than test
    pairs would count pairs twice, and fewer score only the first ones; the same holds for the
    evaluations during training on the validation part."""
    corpus = build_corpus(context.options)
    validation = task_env_kwargs(task, evaluation=True, extra=task.eval.validation_env_kwargs).get("part")
    if task.eval.every_env_steps and validation == "validation":
        if task.eval.episodes_during_training != len(corpus.validation):
            raise TaskFileError(
                f"task {task.name!r}: field 'eval.episodes_during_training' = {task.eval.episodes_during_training:,}"
                f", but the validation part has {len(corpus.validation):,} pairs; fix: set "
                f"eval.episodes_during_training={len(corpus.validation)} to score each once"
            )
    pairs = len(corpus.test)
    if task.eval.episodes > pairs:
        raise TaskFileError(
            f"task {task.name!r}: field 'eval.episodes' = {task.eval.episodes:,}, but the test part has {pairs:,} "
            f"pairs, so some would be scored more than once; fix: set eval.episodes={pairs} to score each once"
        )
    if task.eval.episodes < pairs and context.options.corpus == "files":
        warnings.warn(
            f"task {task.name!r}: eval.episodes = {task.eval.episodes:,} scores the first {task.eval.episodes:,} of "
            f"the test file's {pairs:,} pairs; set eval.episodes={pairs} to score them all",
            stacklevel=2,
        )


def data_fingerprint(context: DomainContext) -> str:
    """The vocabulary in id order: a network's inputs and actions are these word ids."""
    vocabulary = build_corpus(context.options).vocabulary
    text = "\n".join(vocabulary.source_words) + "\n\n" + "\n".join(vocabulary.target_words)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _corpus_env(context: DomainContext) -> TextAsActionEnv:
    return context.probe_env.unwrapped


def make_encoder(context: DomainContext, d_model: int) -> SentenceEncoder:
    corpus = _corpus_env(context).corpus
    options = context.options
    return SentenceEncoder(
        corpus.vocabulary,
        corpus.max_source_length,
        corpus.max_output_length,
        d_model,
        positions=options.target_positions,
        relative_clip=options.relative_clip,
        occurrences=options.occurrence_counts,
        repetition_period=options.repetition_period,
        repetition_features=options.repetition_features,
        period_tokens=options.period_tokens,
        block_tokens=options.block_tokens,
        written_word_dropout=options.written_word_dropout,
        hide_written_words=options.hide_written_words,
        copy_actions=options.copy_actions,
    )


def make_reward_adapter(context: DomainContext) -> TranslationRewardAdapter:
    return TranslationRewardAdapter(context.options)


def action_names(context: DomainContext) -> list[str]:
    vocabulary = _corpus_env(context).corpus.vocabulary
    return vocabulary.action_names() + copy_action_names(context.options.copy_actions)


@hookimpl
def attnq_register_domains(registry) -> None:
    registry.add(
        DomainSpec(
            name="translation",
            description="Text as action (SCAN or your corpus): the agent writes the output word by word",
            make_env=make_env,
            make_encoder=make_encoder,
            make_reward_adapter=make_reward_adapter,
            options_model=TranslationOptions,
            extra="translation",
            action_names=action_names,
            metrics=METRICS,
            libraries=("sacrebleu",),
            headline_metric="exact_match",
            check_task=check_task,
            data_fingerprint=data_fingerprint,
        )
    )
