"""Translation as an MDP: the agent writes the target sentence one word per step.

Observation: ``[source ids (padded) | target prefix ids written so far (padded) | given length]`` as
floats, 0 for padding. Action: ``0`` ends the sentence, ``a > 0`` writes target word ``a``. Reward: 1
when the word written (or the end) is the reference's word at that position, else 0 -
position-aligned, so a mistake does not make every later word wrong. The episode ends when the agent
ends the sentence, or is truncated when it writes past the longest sentence of the corpus.

``part="train"`` samples pairs at random. ``part="test"`` (and ``"validation"``) walks its pairs in
order: the episode reset with seed ``s`` translates pair ``s mod N``, so evaluating ``N`` episodes
from seed 0 covers the part exactly once.

``oracle_length=True`` separates composing from stopping (Lake & Baroni 2018's oracle-length
evaluation): the observation's last slot gives the reference's length, so the encoder masks the end
until that many words are written, and the sentence ends when they are. Otherwise that slot is 0.

At the end of an episode ``info`` carries the sentence scores: exact match, token accuracy (correct
positions over reference length + 1 for the end), and sentence BLEU and chrF from sacrebleu (0-1).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from attnq_translation.corpus import PAD_ID, ParallelCorpus

END_ACTION = 0


class SentenceScorer:
    """Sentence-level BLEU (with effective n-gram order, as short outputs need) and chrF."""

    def __init__(self) -> None:
        self.bleu = BLEU(effective_order=True)
        self.chrf = CHRF()

    def scores(self, output: list[str], reference: list[str]) -> dict[str, float]:
        hypothesis, references = " ".join(output), [" ".join(reference)]
        # sacrebleu scores 0-100 and can round just past 100 on a perfect match
        return {
            "bleu": min(self.bleu.sentence_score(hypothesis, references).score / 100.0, 1.0),
            "chrf": min(self.chrf.sentence_score(hypothesis, references).score / 100.0, 1.0),
        }


class TextAsActionEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, corpus: ParallelCorpus, part: str = "train", oracle_length: bool = False) -> None:
        self.corpus = corpus
        self.part = part
        self.oracle_length = oracle_length
        self.pairs = corpus.part(part)
        vocabulary = corpus.vocabulary
        self.source_length = corpus.max_source_length
        self.output_length = corpus.max_output_length
        self.source_ids, self.references = corpus.word_ids(part)
        self.action_space = gym.spaces.Discrete(vocabulary.num_actions)
        high = max(len(vocabulary.source_words), len(vocabulary.target_words), self.output_length)
        self.observation_space = gym.spaces.Box(
            0.0, float(high), shape=(self.source_length + self.output_length + 1,), dtype=np.float32
        )
        self.scorer = SentenceScorer()
        self._next_test_pair = 0
        self._pair = 0
        self._output: list[int] = []
        self._observation = np.zeros(self.observation_space.shape, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self.part == "train":
            self._pair = int(self.np_random.integers(len(self.pairs)))
        else:
            self._pair = (seed if seed is not None else self._next_test_pair) % len(self.pairs)
            self._next_test_pair = self._pair + 1
        self._output = []
        self._observation[:] = PAD_ID
        source = self.source_ids[self._pair]
        self._observation[: len(source)] = source
        if self.oracle_length:
            self._observation[-1] = len(self.references[self._pair])
        return self._observation.copy(), {"pair_index": self._pair}

    def step(self, action):
        action = int(action)
        reference = self.references[self._pair]
        position = len(self._output)
        if action == END_ACTION:
            correct = position == len(reference)
            terminated, truncated = True, False
        elif position == self.output_length:
            correct, terminated, truncated = False, False, True  # no room left: the sentence never ended
        else:
            correct = position < len(reference) and reference[position] == action
            self._output.append(action)
            self._observation[self.source_length + position] = action
            # with the length given, the sentence ends when it is written (the end is never the agent's)
            terminated, truncated = self.oracle_length and len(self._output) == len(reference), False
        info: dict[str, Any] = {"token_correct": float(correct)}
        if terminated or truncated:
            info.update(self._sentence_scores(reference, ended=terminated))
        return self._observation.copy(), float(correct), terminated, truncated, info

    def _sentence_scores(self, reference: list[int], ended: bool) -> dict[str, float]:
        words = self.corpus.vocabulary.target_words
        output_words = [words[a - 1] for a in self._output]
        reference_words = [words[a - 1] for a in reference]
        aligned = sum(1 for o, r in zip(self._output, reference) if o == r) + float(
            ended and len(self._output) == len(reference)
        )
        return {
            "exact_match": float(ended and self._output == reference),
            "token_accuracy": aligned / (len(reference) + 1),
            **self.scorer.scores(output_words, reference_words),
        }
