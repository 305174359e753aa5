"""Parallel corpora: sentence pairs, file loaders and the vocabularies an agent writes with.

Two file formats are read, so users can bring SCAN's official split files or their own language pair:

* ``scan``: one pair per line, ``IN: jump left OUT: I_TURN_LEFT I_JUMP``;
* ``tsv``: one pair per line, ``source<TAB>target``.

Words are separated by whitespace. A bad line is an error naming the file and line number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from attnq.errors import TaskFileError

EOS = "<eos>"
PAD_ID = 0  # id 0 is padding in observations; words are numbered from 1

FileFormat = Literal["auto", "scan", "tsv"]
PARTS = ("train", "validation", "test")
HeldOut = Literal["random", "longest", "longest_run"]


class CorpusError(TaskFileError):
    """A corpus file is missing or has a line that is not a sentence pair."""


def unit_run_at(words: tuple[str, ...], start: int, unit: int) -> int:
    """Words from ``start`` on covered by the ``unit`` words there repeated."""
    repeats = 1
    while words[start + repeats * unit : start + (repeats + 1) * unit] == words[start : start + unit]:
        repeats += 1
    return repeats * unit


def run_at(words: tuple[str, ...], start: int, longest_unit: int = 3) -> int:
    """Most words from ``start`` on covered by one unit of 1..longest_unit words repeated."""
    return max(
        (unit_run_at(words, start, unit) for unit in range(1, min(longest_unit, len(words) - start) + 1)), default=0
    )


def longest_run(words: tuple[str, ...]) -> int:
    """Most words in a row covered by one unit (of 1-3 words) repeated, anywhere: SCAN's length split
    tests runs longer than any in training ("walk around left thrice" repeats two words 12 times)."""
    return max((run_at(words, start) for start in range(len(words))), default=0)


@dataclass(frozen=True)
class Pair:
    source: tuple[str, ...]
    target: tuple[str, ...]


def _parse_scan_line(line: str) -> tuple[str, str] | str:
    if not line.startswith("IN:") or " OUT:" not in line:
        return "expected 'IN: <source words> OUT: <target words>'"
    source, target = line[len("IN:") :].split(" OUT:", 1)
    return source, target


def _parse_tsv_line(line: str) -> tuple[str, str] | str:
    fields = line.split("\t")
    if len(fields) != 2:
        return f"expected 'source<TAB>target' (2 tab-separated fields), found {len(fields)}"
    return fields[0], fields[1]


def _detect_format(lines: list[str]) -> Literal["scan", "tsv"]:
    first = next((line for line in lines if line.strip()), "")
    return "scan" if first.startswith("IN:") else "tsv"


def load_pairs(path: Path, file_format: FileFormat = "auto") -> list[Pair]:
    """Read a parallel corpus file; blank lines are skipped, any other bad line is an error."""
    if not path.is_file():
        raise CorpusError(
            f"corpus file {path} does not exist; fix: give the path of a SCAN ('IN: ... OUT: ...') or TSV file"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc}); fix: save the corpus as UTF-8") from None
    chosen = _detect_format(lines) if file_format == "auto" else file_format
    parse = _parse_scan_line if chosen == "scan" else _parse_tsv_line
    pairs: list[Pair] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        parsed = parse(line)
        if isinstance(parsed, str):
            raise CorpusError(f"{path}, line {number}: {parsed} ({chosen} format); got {line[:80]!r}")
        source, target = parsed[0].split(), parsed[1].split()
        if not source or not target:
            side = "source" if not source else "target"
            raise CorpusError(
                f"{path}, line {number}: the {side} side is empty; fix: every pair needs words on both sides"
            )
        if EOS in target:
            raise CorpusError(f"{path}, line {number}: the target contains the reserved word {EOS!r}; fix: rename it")
        pairs.append(Pair(tuple(source), tuple(target)))
    if not pairs:
        raise CorpusError(f"{path}: no sentence pairs found; fix: one pair per line ({chosen} format)")
    return pairs


@dataclass(frozen=True)
class Vocabulary:
    """Source words and target words (the agent's actions), in first-seen order.

    Action ``0`` is end-of-sequence; action ``a > 0`` writes ``target_words[a - 1]``. Observation ids
    are the same numbers shifted so that 0 stays padding: source word ``i`` has id ``i + 1``.
    """

    source_words: tuple[str, ...]
    target_words: tuple[str, ...]

    @classmethod
    def from_pairs(cls, pairs: Iterable[Pair]) -> Vocabulary:
        source: dict[str, None] = {}
        target: dict[str, None] = {}
        for pair in pairs:
            source.update(dict.fromkeys(pair.source))
            target.update(dict.fromkeys(pair.target))
        return cls(tuple(source), tuple(target))

    @property
    def num_actions(self) -> int:
        return len(self.target_words) + 1

    def action_names(self) -> list[str]:
        return [EOS, *self.target_words]

    @cached_property
    def _source_index(self) -> dict[str, int]:
        return {w: i + 1 for i, w in enumerate(self.source_words)}

    @cached_property
    def _target_index(self) -> dict[str, int]:
        return {w: i + 1 for i, w in enumerate(self.target_words)}

    def source_ids(self, words: Iterable[str]) -> list[int]:
        return [self._source_index[w] for w in words]

    def actions_for(self, words: Iterable[str]) -> list[int]:
        return [self._target_index[w] for w in words]


@dataclass(frozen=True)
class ParallelCorpus:
    """A train, a test and an optional validation part sharing one vocabulary and one observation size."""

    train: tuple[Pair, ...]
    test: tuple[Pair, ...]
    vocabulary: Vocabulary
    validation: tuple[Pair, ...] = ()

    @classmethod
    def from_parts(
        cls,
        train: Iterable[Pair],
        test: Iterable[Pair],
        validation_pairs: int = 0,
        seed: int = 0,
        held_out: HeldOut = "random",
    ) -> ParallelCorpus:
        """``validation_pairs`` of the training pairs become the validation part and leave training:
        a draw seeded by ``seed``, or those with the longest outputs (``held_out="longest"``) or the
        longest repeated runs (``"longest_run"``, :func:`longest_run`), ties broken by the draw. The
        vocabulary (the agent's word ids) is the same either way."""
        train, test = tuple(train), tuple(test)
        vocabulary = Vocabulary.from_pairs(train + test)
        if validation_pairs >= len(train):
            raise CorpusError(
                f"domain_options.validation_pairs = {validation_pairs:,} would leave no training pairs (there are "
                f"{len(train):,}); fix: hold out fewer, e.g. a tenth"
            )
        rng = np.random.default_rng(seed)
        if held_out in ("longest", "longest_run"):
            # a length split inside training: the checkpoint kept is the one that writes past the rest
            measure = len if held_out == "longest" else longest_run
            draw = rng.permutation(len(train))
            by_length = sorted(draw.tolist(), key=lambda i: -measure(train[i].target))
            held = set(by_length[:validation_pairs])
        else:
            held = set(rng.choice(len(train), size=validation_pairs, replace=False).tolist())
        kept = tuple(pair for i, pair in enumerate(train) if i not in held)
        return cls(kept, test, vocabulary, tuple(train[i] for i in sorted(held)))

    def part(self, name: str) -> tuple[Pair, ...]:
        if name not in PARTS:
            raise ValueError(f"corpus part must be one of {', '.join(PARTS)}, got {name!r}")
        if name == "validation" and not self.validation:
            raise ValueError("the validation part is empty; fix: set domain_options.validation_pairs > 0")
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def word_ids(self, name: str) -> tuple[tuple[np.ndarray, ...], tuple[list[int], ...]]:
        """A part's source word ids (read-only float32 arrays) and reference action ids, made once
        per corpus and part and shared by the envs built on it: a vectorised training env builds dozens."""
        if name not in self._word_ids:
            pairs = self.part(name)
            sources = tuple(np.array(self.vocabulary.source_ids(p.source), dtype=np.float32) for p in pairs)
            for array in sources:
                array.flags.writeable = False
            self._word_ids[name] = (sources, tuple(self.vocabulary.actions_for(p.target) for p in pairs))
        return self._word_ids[name]

    @cached_property
    def _word_ids(self) -> dict[str, tuple[tuple[np.ndarray, ...], tuple[list[int], ...]]]:
        return {}

    @cached_property
    def max_source_length(self) -> int:
        return max(len(p.source) for p in self.train + self.validation + self.test)

    @cached_property
    def max_output_length(self) -> int:
        return max(len(p.target) for p in self.train + self.validation + self.test)
