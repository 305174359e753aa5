"""Source sentence + target prefix -> tokens, with a "write" query token first.

Three segments, each token = word embedding + position embedding (per segment) + segment embedding:

* the query token, at the target position about to be written: it is pooled for the Q-values, so
  its attention over the source words is the alignment of each emitted word;
* the source words;
* the target words written so far.

``positions`` says how the written words and the query know where they are. ``absolute``: a learned
embedding per position. ``relative``: each written word carries its distance back from the word to
write (1 = the last one; distances past ``relative_clip`` share one embedding) and the query no
position, so an output longer than any in training meets no untrained position (Shaw et al. 2018's
clipped distances). ``recurrent``: an LSTM reads the written words left to right; its state after
each word is that word's position and its state after the last the query's, a count that can go on
past the longest training output where a clipped distance cannot (LSTMs count, Weiss et al. 2018).

With ``occurrences``, each written word also carries how many times its word has been written up to
it (1 = the first I_JUMP), from one embedding shared by all words: a repetition's count then reads
the same for every verb, and a turn repeated twenty times trains the counts a verb reaches only in
longer outputs.

With ``repetition_period`` > 0, each written word also carries the repetition it continues: the
shortest unit (up to that many words) whose run back from it is longest, how many whole units that
run spans, and the word's place in its unit; the query carries those of the last written
word. Twelve (I_TURN_LEFT I_JUMP) units then count as twelve, as twelve I_TURN_LEFTs do in training,
where the words they span (24) are more than any training output has. ``repetition_features`` names
which of the three (``period``, ``units``, ``phase``) are added; the others are computed but not shown.
With ``period_tokens`` as well, the last written word's repetition is also read at every period p up
to ``repetition_period``: one token per period, right after the query, carrying p, how many whole
p-word units its run back spans and its place in the unit, the counts from one table shared by all
periods. Three 8-word blocks then count as three, as three blocks of 2 or 4 words do.
With ``written_word_dropout``, each written word's identity embedding is zeroed with that
probability while training (positions and repetition counts stay), so the decisions lean more on the
command and the counts; evaluation sees every word. With ``hide_written_words`` no written word's
identity is ever shown, in training or evaluation: the written words are their positions and counts
alone (the LSTM of ``recurrent`` positions then counts them), so no decision can turn on which words
a run holds, only on the command and how far the run has gone.

With ``copy_actions`` (the environment's copy actions), each written word also carries which action
wrote it (a word, ``COPY k`` or ``AGAIN``), and the query that of the last one, so a decision to copy
again reads as the same event after any copy.

Padding is masked, so attention never lands on it. The observation's last slot (a length given by
an oracle-length evaluation, else 0) is no token: it only masks the end action until that many words
are written.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
import torch
from torch import nn

from attnq.domain import StateEncoder, Tokens
from attnq_translation.corpus import PAD_ID, Vocabulary
from attnq_translation.environment import END_ACTION, ObservationLayout, copy_action_names
from attnq_translation.options import REPETITION_FEATURES, RepetitionFeature, TargetPositions

QUERY_SEGMENT, SOURCE_SEGMENT, TARGET_SEGMENT = 0, 1, 2
# each repetition feature's embedding table, by the attribute name its checkpoints carry
REPETITION_TABLES = {"period": "repetition_unit", "units": "repetition_count", "phase": "repetition_phase"}


class SentenceEncoder(StateEncoder):
    def __init__(
        self,
        vocabulary: Vocabulary,
        source_length: int,
        output_length: int,
        d_model: int,
        positions: TargetPositions = "absolute",
        relative_clip: int = 16,
        occurrences: bool = False,
        repetition_period: int = 0,
        repetition_features: tuple[RepetitionFeature, ...] = REPETITION_FEATURES,
        period_tokens: bool = False,
        block_tokens: bool = False,
        written_word_dropout: float = 0.0,
        hide_written_words: bool = False,
        copy_actions: int = 0,
    ) -> None:
        super().__init__(d_model)
        if positions not in get_args(TargetPositions):
            raise ValueError(f"positions must be one of {get_args(TargetPositions)}, got {positions!r}")
        self.vocabulary = vocabulary
        self.source_length = source_length
        self.output_length = output_length
        self.positions = positions
        self.relative_clip = relative_clip
        if (period_tokens or block_tokens) and not repetition_period:
            raise ValueError("period_tokens and block_tokens need repetition_period > 0: the periods they read")
        if period_tokens and block_tokens:
            raise ValueError("period_tokens and block_tokens fill the same tokens; set one of them")
        self.period_tokens = repetition_period if period_tokens or block_tokens else 0
        self.block_tokens = block_tokens
        self.written_word_dropout = written_word_dropout
        self.hide_written_words = hide_written_words
        self.num_tokens = 1 + self.period_tokens + source_length + output_length
        self.copy_actions = copy_actions
        self.layout = ObservationLayout(source_length, output_length, copy_actions)
        self.num_actions = vocabulary.num_actions + len(copy_action_names(copy_actions))
        if copy_actions:  # 0 padding, 1 a word, 1 + k COPY k, copy_actions + 2 AGAIN
            self.written_by = nn.Embedding(copy_actions + 3, d_model)
        self.source_word = nn.Embedding(len(vocabulary.source_words) + 1, d_model, padding_idx=PAD_ID)
        self.target_word = nn.Embedding(len(vocabulary.target_words) + 1, d_model, padding_idx=PAD_ID)
        self.write_query = nn.Parameter(torch.randn(d_model) * 0.02)
        self.source_position = nn.Embedding(source_length, d_model)
        if positions == "recurrent":
            self.target_recurrence = nn.LSTM(d_model, d_model, batch_first=True)
        elif positions == "relative":  # distances 0..clip; 0 is only ever padding
            self.target_position = nn.Embedding(relative_clip + 1, d_model)
        else:  # output_length + 1 positions: the query may sit after a full prefix, where only the end fits
            self.target_position = nn.Embedding(output_length + 1, d_model)
        self.occurrences = occurrences
        if occurrences:  # counts 1..output_length; 0 is only ever padding
            self.target_occurrence = nn.Embedding(output_length + 1, d_model)
        self.repetition_period = repetition_period
        self.repetition_features = tuple(f for f in REPETITION_FEATURES if f in repetition_features)
        if repetition_period:  # period 0 = no repetition; units 1..output_length; phase 0..period-1
            sizes = {"period": repetition_period + 1, "units": output_length + 1, "phase": repetition_period}
            for name in self.repetition_features:
                setattr(self, REPETITION_TABLES[name], nn.Embedding(sizes[name], d_model))
        self.segment = nn.Embedding(3, d_model)
        if self.period_tokens:  # periods (or blocks) 1..P; units 0..output_length (0: no run); phase 0..P-1
            self.block_period = nn.Embedding(repetition_period + 1, d_model)
            self.block_count = nn.Embedding(output_length + 1, d_model)
            self.block_phase = nn.Embedding(repetition_period, d_model)

    def _split(self, observations_BX: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Source ids, prefix ids, which action wrote each prefix word (``[B, 0]`` without copy actions)
        and the given length."""
        if observations_BX.dim() != 2 or observations_BX.shape[1] != self.layout.size:
            raise ValueError(
                f"expected text-as-action observations [B, {self.layout.size}], got {list(observations_BX.shape)}"
            )
        return self.layout.split(observations_BX.long())

    def forward(self, observations_BX: torch.Tensor) -> Tokens:
        source_BS, prefix_BL, written_by_BL, _ = self._split(observations_BX)
        device = observations_BX.device
        source_positions = torch.arange(self.source_length, device=device)
        target_positions = torch.arange(self.output_length, device=device)
        source_BSD = (
            self.source_word(source_BS) + self.source_position(source_positions) + self.segment.weight[SOURCE_SEGMENT]
        )
        written_B = (prefix_BL != PAD_ID).sum(dim=1)
        words_BLD = self._written_words(prefix_BL)
        if self.positions == "recurrent":
            prefix_position_BLD, query_position_BD = self._recurrent_positions(words_BLD, written_B)
        elif self.positions == "relative":  # distance back from the word to write; padding (<= 0) is masked
            distance_BL = (written_B.unsqueeze(1) - target_positions).clamp(0, self.relative_clip)
            prefix_position_BLD = self.target_position(distance_BL)
            query_position_BD = torch.zeros_like(self.write_query).expand(len(prefix_BL), -1)
        else:
            prefix_position_BLD = self.target_position(target_positions).expand(len(prefix_BL), -1, -1)
            query_position_BD = self.target_position(written_B)
        prefix_BLD = words_BLD + prefix_position_BLD + self.segment.weight[TARGET_SEGMENT]
        if self.occurrences:
            counts_BL = occurrence_counts(prefix_BL, self.target_word.num_embeddings)
            prefix_BLD = prefix_BLD + self.target_occurrence(counts_BL)
        runs_PBL, unit_BL = None, None
        if self.repetition_period:
            runs_PBL = runs_by_period(prefix_BL, self.repetition_period)
            values = dict(zip(REPETITION_FEATURES, longest_repetitions(runs_PBL), strict=True))
            unit_BL = values["period"]
            repetition_BLD = sum(
                getattr(self, REPETITION_TABLES[name])(values[name]) for name in self.repetition_features
            )
            prefix_BLD = prefix_BLD + repetition_BLD
            query_position_BD = query_position_BD + at_last_written(repetition_BLD, written_B)
        if self.copy_actions:
            written_by_BLD = self.written_by(written_by_BL)
            prefix_BLD = prefix_BLD + written_by_BLD
            query_position_BD = query_position_BD + at_last_written(written_by_BLD, written_B)
        query_B1D = (self.write_query + query_position_BD + self.segment.weight[QUERY_SEGMENT]).unsqueeze(1)
        blocks_BPD = self._period_tokens(prefix_BL, runs_PBL, unit_BL, written_B)
        embeddings_BTD = torch.cat([query_B1D, blocks_BPD, source_BSD, prefix_BLD], dim=1)
        mask_BT = torch.cat(
            [
                written_B.new_ones(len(source_BS), 1 + self.period_tokens, dtype=torch.bool),
                source_BS != PAD_ID,
                prefix_BL != PAD_ID,
            ],
            dim=1,
        )
        return Tokens(embeddings_BTD, mask_BT, query_index=0)

    def _written_words(self, prefix_BL: torch.Tensor) -> torch.Tensor:
        """The written words' embeddings ``[B, L, D]``; while training, each is zeroed with probability
        ``written_word_dropout`` (evaluation always sees every word); all zero with ``hide_written_words``."""
        if self.hide_written_words:
            return self.write_query.new_zeros(*prefix_BL.shape, self.d_model)
        words_BLD = self.target_word(prefix_BL)
        if not (self.training and self.written_word_dropout):
            return words_BLD
        keep_BL1 = torch.rand(prefix_BL.shape, device=prefix_BL.device).unsqueeze(-1) >= self.written_word_dropout
        return words_BLD * keep_BL1

    def _recurrent_positions(
        self, words_BLD: torch.Tensor, written_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTM's state after each written word ``[B, L, D]`` and after the last one ``[B, D]`` (0
        before any). Written words come first in each row, so the states never read padding."""
        batch, length, _ = words_BLD.shape
        states_BLD = words_BLD.new_zeros(batch, length, self.d_model)
        longest = int(written_B.max()) if batch else 0
        if longest:
            states_BLD[:, :longest] = self.target_recurrence(words_BLD[:, :longest])[0]
        return states_BLD, at_last_written(states_BLD, written_B)

    def _period_tokens(
        self,
        prefix_BL: torch.Tensor,
        runs_PBL: torch.Tensor | None,
        unit_BL: torch.Tensor | None,
        written_B: torch.Tensor,
    ) -> torch.Tensor:
        """``[B, P, D]``: at each period p (in words, or with ``block_tokens`` in units of the last
        written word's repetition period, from ``unit_BL``), the last written word's run back as whole
        p-period units and its place in the unit (``[B, 0, D]`` without period or block tokens)."""
        if not self.period_tokens:
            return self.write_query.new_zeros(len(written_B), 0, self.d_model)
        periods_P = torch.arange(1, self.period_tokens + 1, device=written_B.device)
        if self.block_tokens:  # m units of the last word's period; its place counted in units
            unit_B1 = at_last_written(unit_BL.unsqueeze(-1), written_B)
            period_BP = unit_B1 * periods_P
            run_BP = at_last_written(runs_back(prefix_BL, period_BP).transpose(1, 2), written_B)
            blocks_BP, words_BP = whole_units(run_BP, period_BP)
            place_BP = words_BP // unit_B1.clamp(min=1)
        else:
            run_BP = at_last_written(runs_PBL.permute(1, 2, 0), written_B)
            blocks_BP, place_BP = whole_units(run_BP, periods_P)
        return self.block_period(periods_P) + self.block_count(blocks_BP) + self.block_phase(place_BP)

    def action_mask(self, observations_BX: torch.Tensor) -> torch.Tensor | None:
        """With a length given, the end is inadmissible until that many words are written; None when
        no observation gives one (training), so the learner's fast paths stay."""
        _, prefix_BL, _, given_B = self._split(observations_BX)
        if not bool((given_B > 0).any()):
            return None
        mask_BA = torch.ones(len(given_B), self.num_actions, dtype=torch.bool, device=given_B.device)
        mask_BA[:, END_ACTION] = (given_B == 0) | ((prefix_BL != PAD_ID).sum(dim=1) >= given_B)
        return mask_BA

    def token_labels(self, observation: np.ndarray) -> list[str]:
        source, prefix, _, _ = self.layout.split(np.asarray(observation).astype(np.int64))
        written = int((prefix != PAD_ID).sum())
        labels = [f"write #{written + 1}"]
        period_label = "block" if self.block_tokens else "period"
        labels += [f"{period_label} {p}" for p in range(1, self.period_tokens + 1)]
        labels += [
            f"{k + 1}:{self.vocabulary.source_words[i - 1]}" if i != PAD_ID else "(pad)" for k, i in enumerate(source)
        ]
        labels += [
            f"out {k + 1}: {self.vocabulary.target_words[i - 1]}" if i != PAD_ID else "(pad)"
            for k, i in enumerate(prefix)
        ]
        return labels


def at_last_written(values_BLD: torch.Tensor, written_B: torch.Tensor) -> torch.Tensor:
    """Each row's value ``[B, D]`` at its last written word; 0 in a row with nothing written."""
    last_B = (written_B - 1).clamp(min=0)
    rows_B = torch.arange(len(values_BLD), device=values_BLD.device)
    return values_BLD[rows_B, last_B] * (written_B > 0).unsqueeze(1)


def occurrence_counts(ids_BL: torch.Tensor, vocabulary_size: int) -> torch.Tensor:
    """How many times each row's word at each place has come up in the row so far, itself included;
    0 at padding."""
    seen_BLV = torch.nn.functional.one_hot(ids_BL, vocabulary_size).cumsum(dim=1)
    return seen_BLV.gather(2, ids_BL.unsqueeze(-1)).squeeze(-1) * (ids_BL != PAD_ID)


def repetitions(ids_BL: torch.Tensor, longest_period: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each written word, the repetition it continues: ``(period, units, phase)``, each ``[B, L]``.

    A run of period p back from word i is how many words j <= i in a row equal the word p before them.
    The period is the p (1..longest_period) with the longest run, the shortest on ties, 0 when every
    run is empty (then units and phase are 0 too, as at padding). The run and the unit before it span
    ``run + p`` words: ``units`` is that over p, rounded down, and ``phase`` the remainder.
    """
    return longest_repetitions(runs_by_period(ids_BL, longest_period))


def longest_repetitions(runs_PBL: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`repetitions` from the runs of :func:`runs_by_period`."""
    run_BL, index_BL = runs_PBL.max(dim=0)
    period_BL = (index_BL + 1) * (run_BL > 0)
    return (period_BL, *whole_units(run_BL, period_BL))


def whole_units(run: torch.Tensor, period: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A run back at ``period`` and the unit before it span ``run + period`` words: how many whole
    units that is, and the remainder; both 0 where the run is empty."""
    span = (run + period) * (run > 0)
    divisor = period.clamp(min=1)
    return span // divisor, span % divisor


def runs_by_period(ids_BL: torch.Tensor, longest_period: int) -> torch.Tensor:
    """``[P, B, L]``: for each period p = 1..P, how many words j <= i in a row equal the word p before them."""
    periods_BP = torch.arange(1, longest_period + 1, device=ids_BL.device).expand(len(ids_BL), -1)
    return runs_back(ids_BL, periods_BP).movedim(1, 0)


def runs_back(ids_BL: torch.Tensor, period_BP: torch.Tensor) -> torch.Tensor:
    """``[B, P, L]``: for each row's periods p (0: none), how many words j <= i in a row equal the word
    p before them."""
    place_L = torch.arange(ids_BL.shape[1], device=ids_BL.device)
    back_BPL = place_L - period_BP.unsqueeze(-1)
    words_BPL = ids_BL.unsqueeze(1).expand(-1, period_BP.shape[1], -1)
    earlier_BPL = words_BPL.gather(2, back_BPL.clamp(min=0))
    repeats_BPL = (back_BPL >= 0) & (period_BP.unsqueeze(-1) > 0) & (words_BPL == earlier_BPL) & (words_BPL != PAD_ID)
    last_break_BPL = torch.where(repeats_BPL, -1, place_L).cummax(dim=2).values
    return place_L - last_break_BPL
