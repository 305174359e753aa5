"""Translation as an MDP: the agent writes the target sentence one word per step.

Observation: ``[source ids (padded) | target prefix ids written so far (padded) | given length]`` as
floats, 0 for padding. Action: ``0`` ends the sentence, ``a > 0`` writes target word ``a``. Reward: 1
when the word written (or the end) is the reference's word at that position, else 0 -
position-aligned, so a mistake does not make every later word wrong. The episode ends when the agent
ends the sentence, or is truncated when it writes past the longest sentence of the corpus.

``part="train"`` samples pairs at random. ``part="test"`` (and ``"validation"``) walks its pairs in
order: the episode reset with seed ``s`` translates pair ``s mod N``, so evaluating ``N`` episodes
from seed 0 covers the part exactly once.

With ``copy_actions=K`` > 0 there are K + 1 more actions after the words: ``COPY k`` (k = 1..K)
appends a copy of the last k words written, and ``AGAIN`` makes the previous action's copy once more.
A copy is rewarded with its k words if all of them are the reference's at their positions, else 0,
so the greedy choice never trades a right word for a longer copy that is partly wrong. A copy of more
words than are written, or ``AGAIN`` after anything but a copy, writes nothing; the episode is
truncated once it has taken as many steps as the longest sentence has words. The observation then
also says, for each written word, which action wrote it (1: written as a word, 1 + k: ``COPY k``,
K + 2: ``AGAIN``), in a block after the written words: ``[source | prefix | written by | length]``.

``oracle_length=True`` separates composing from stopping (Lake & Baroni 2018's oracle-length
evaluation): the observation's last slot gives the reference's length, so the encoder masks the end
until that many words are written, and the sentence ends when they are. Otherwise that slot is 0.

At the end of an episode ``info`` carries the sentence scores: exact match, token accuracy (correct
positions over reference length + 1 for the end), and sentence BLEU and chrF from sacrebleu (0-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from attnq_translation.corpus import PAD_ID, ParallelCorpus

END_ACTION = 0


def copy_action_names(copy_actions: int) -> list[str]:
    """The actions after the words: ``COPY 1`` .. ``COPY K`` and ``AGAIN``; none when K is 0."""
    return [f"COPY {k}" for k in range(1, copy_actions + 1)] + ["AGAIN"] if copy_actions else []


@dataclass(frozen=True)
class ObservationLayout:
    """Where each part of an observation sits: ``[source | prefix | written by | length]``, the
    written-by block only with copy actions. The environment writes by it and the encoder reads by it.

    :param source_length: slots for the command's word ids (the corpus's longest command)
    :param output_length: slots for the written words (the corpus's longest output)
    :param copy_actions: the copy actions' K; with 0 there is no written-by block
    """

    source_length: int
    output_length: int
    copy_actions: int = 0

    @property
    def size(self) -> int:
        return self.written_by.stop + 1

    @property
    def source(self) -> slice:
        return slice(0, self.source_length)

    @property
    def prefix(self) -> slice:
        return slice(self.source_length, self.source_length + self.output_length)

    @property
    def written_by(self) -> slice:
        written_by_length = self.output_length if self.copy_actions else 0
        return slice(self.prefix.stop, self.prefix.stop + written_by_length)

    def split(self, observations):
        """Source ids, prefix ids, written-by ids and the given length, along the last axis."""
        return (
            observations[..., self.source],
            observations[..., self.prefix],
            observations[..., self.written_by],
            observations[..., -1],
        )

    def row(self, source, written, length: int = 0) -> np.ndarray:
        """One observation with the command's ids, the words written one per action and the given length."""
        row = np.full(self.size, PAD_ID, dtype=np.float32)
        row[: len(source)] = source
        row[self.prefix.start : self.prefix.start + len(written)] = written
        if self.copy_actions:  # 1: written as a word
            row[self.written_by.start : self.written_by.start + len(written)] = 1
        row[-1] = length
        return row


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

    def __init__(
        self, corpus: ParallelCorpus, part: str = "train", oracle_length: bool = False, copy_actions: int = 0
    ) -> None:
        self.corpus = corpus
        self.part = part
        self.oracle_length = oracle_length
        self.copy_actions = copy_actions
        self.pairs = corpus.part(part)
        vocabulary = corpus.vocabulary
        self.source_length = corpus.max_source_length
        self.output_length = corpus.max_output_length
        self.layout = ObservationLayout(self.source_length, self.output_length, copy_actions)
        self.source_ids, self.references = corpus.word_ids(part)
        self.first_copy = vocabulary.num_actions  # COPY 1; AGAIN follows COPY K
        self.action_space = gym.spaces.Discrete(vocabulary.num_actions + len(copy_action_names(copy_actions)))
        written_by_ids = copy_actions + 2 if copy_actions else 0
        high = max(len(vocabulary.source_words), len(vocabulary.target_words), self.output_length, written_by_ids)
        self.observation_space = gym.spaces.Box(0.0, float(high), shape=(self.layout.size,), dtype=np.float32)
        self.scorer = SentenceScorer()
        self._next_test_pair = 0
        self._pair = 0
        self._output: list[int] = []
        self._steps = 0
        self._last_copy = 0  # words in the previous action's copy; 0 when it was no copy
        self._observation = np.zeros(self.observation_space.shape, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self.part == "train":
            self._pair = int(self.np_random.integers(len(self.pairs)))
        else:
            self._pair = (seed if seed is not None else self._next_test_pair) % len(self.pairs)
            self._next_test_pair = self._pair + 1
        self._output = []
        self._steps = 0
        self._last_copy = 0
        given = len(self.references[self._pair]) if self.oracle_length else 0
        self._observation[:] = self.layout.row(self.source_ids[self._pair], [], given)
        return self._observation.copy(), {"pair_index": self._pair}

    def step(self, action):
        action = int(action)
        self._steps += 1
        if action >= self.first_copy:
            return self._copy(action)
        self._last_copy = 0
        reference = self.references[self._pair]
        position = len(self._output)
        if action == END_ACTION:
            correct = position == len(reference)
            terminated, truncated = True, False
        elif position == self.output_length:
            correct, terminated, truncated = False, False, True  # no room left: the sentence never ended
        else:
            correct = position < len(reference) and reference[position] == action
            self._write([action], written_by=1)
            # with the length given, the sentence ends when it is written (the end is never the agent's)
            terminated, truncated = self.oracle_length and len(self._output) >= len(reference), False
        return self._result(float(correct), terminated, truncated)

    def _copy(self, action: int) -> tuple:
        """``COPY k`` or ``AGAIN``: append the copy if there is one to make, rewarded if all of it is right."""
        again = action == self.first_copy + self.copy_actions
        words = self._last_copy if again else action - self.first_copy + 1
        reference, position = self.references[self._pair], len(self._output)
        if words == 0 or words > position:  # nothing to copy: the step writes nothing
            self._last_copy = 0
            return self._result(0.0, False, self._steps > self.output_length)
        if position + words > self.output_length:  # no room left: the sentence never ended
            return self._result(0.0, False, True)
        copy = self._output[position - words :]
        self._write(copy, written_by=self.copy_actions + 2 if again else words + 1)
        self._last_copy = words
        correct = reference[position : position + words] == copy
        terminated = self.oracle_length and len(self._output) >= len(reference)
        return self._result(float(words) if correct else 0.0, terminated, self._steps > self.output_length)

    def _write(self, words: list[int], written_by: int) -> None:
        position = len(self._output)
        self._output += words
        start = self.layout.prefix.start + position
        self._observation[start : start + len(words)] = words
        if self.copy_actions:
            start = self.layout.written_by.start + position
            self._observation[start : start + len(words)] = written_by

    def _result(self, reward: float, terminated: bool, truncated: bool) -> tuple:
        info: dict[str, Any] = {"token_correct": reward}
        if terminated or truncated:
            info.update(self._sentence_scores(self.references[self._pair], ended=terminated))
        return self._observation.copy(), reward, terminated, truncated, info

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
