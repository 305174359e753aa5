"""The text-as-action domain: SCAN generation, corpus files, reward arithmetic, tokens, real training."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from attnq.config import load_task
from attnq.errors import TaskFileError
from attnq.evaluation import evaluate_policy
from attnq.runtime import prepare_task
from attnq.training.run import train
from attnq_translation import scan
from attnq_translation.corpus import CorpusError, Pair, ParallelCorpus, load_pairs, longest_run
from attnq_translation.encoder import QUERY_SEGMENT, TARGET_SEGMENT, SentenceEncoder
from attnq_translation.environment import END_ACTION, TextAsActionEnv
from attnq_translation.options import TranslationOptions, build_corpus
from attnq_translation.reward import TranslationRewardAdapter
from conftest import SMALL_MODEL, TASKS, attnq_command, files_corpus


def test_scan_generator_yields_every_pair_once():
    pairs = scan.all_pairs()
    assert len(pairs) == len(set(pairs)) == 20_910
    assert max(len(p.source) for p in pairs) == 9
    assert max(len(p.target) for p in pairs) == 48


def test_scan_splits_have_the_published_sizes():
    train, test = scan.simple_split(seed=0)
    assert (len(train), len(test)) == (16_728, 4_182)
    assert not set(train) & set(test)
    assert scan.simple_split(seed=0) == (train, test) and scan.simple_split(seed=1)[1] != test
    train, test = scan.add_primitive_split("jump")
    assert (len(train), len(test)) == (13_204, 7_706) and not set(train) & set(test)
    assert [p for p in train if "jump" in p.source] == [scan.Pair(("jump",), ("I_JUMP",))]
    assert all("jump" in p.source for p in test) and set(train) | set(test) == set(scan.all_pairs())
    train, test = scan.length_split()
    assert (len(train), len(test)) == (16_990, 3_920)
    assert max(len(p.target) for p in train) == 22
    assert min(len(p.target) for p in test) == 24


@pytest.mark.parametrize(
    "command, actions",
    [
        (
            "jump opposite left after walk around left",
            "I_TURN_LEFT I_WALK I_TURN_LEFT I_WALK I_TURN_LEFT I_WALK I_TURN_LEFT I_WALK I_TURN_LEFT "
            "I_TURN_LEFT I_JUMP",
        ),
        ("turn left twice", "I_TURN_LEFT I_TURN_LEFT"),
        ("jump left", "I_TURN_LEFT I_JUMP"),
        ("run and look right thrice", "I_RUN I_TURN_RIGHT I_LOOK I_TURN_RIGHT I_LOOK I_TURN_RIGHT I_LOOK"),
        ("walk after turn opposite right", "I_TURN_RIGHT I_TURN_RIGHT I_WALK"),
        ("turn around right", "I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT"),
    ],
)
def test_scan_semantics_match_the_paper(command, actions):
    assert " ".join(scan.interpret(command)) == actions


def _tiny_corpus() -> ParallelCorpus:
    train = [Pair(("a",), ("X",)), Pair(("b",), ("Y",)), Pair(("a", "b"), ("X", "Y"))]
    test = [Pair(("b", "a"), ("Y", "X")), Pair(("a", "a"), ("X", "X"))]
    return ParallelCorpus.from_parts(train, test)


def test_rewards_are_position_aligned_and_sentence_scores_add_up():
    env = TextAsActionEnv(_tiny_corpus(), part="test")
    vocabulary = env.corpus.vocabulary
    x, y = vocabulary.actions_for(["X", "Y"])
    env.reset(seed=0)  # "b a" -> "Y X"
    rewards, infos = [], []
    for action in (x, x, END_ACTION):  # first word wrong, second right, end right
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        infos.append(info)
    assert rewards == [0.0, 1.0, 1.0] and terminated and not truncated
    final = infos[-1]
    assert final["exact_match"] == 0.0
    assert final["token_accuracy"] == pytest.approx(2 / 3)
    assert 0.0 < final["chrf"] < 1.0

    env.reset(seed=1)  # "a a" -> "X X", written exactly
    for action in (x, x):
        env.step(action)
    _, reward, terminated, _, info = env.step(END_ACTION)
    assert reward == 1.0 and info["exact_match"] == 1.0 and info["token_accuracy"] == 1.0
    assert info["bleu"] == pytest.approx(1.0) and info["chrf"] == pytest.approx(1.0)


def test_an_unended_sentence_is_truncated_and_never_exact():
    env = TextAsActionEnv(_tiny_corpus(), part="train")
    env.reset(seed=0)
    x = env.corpus.vocabulary.actions_for(["X"])[0]
    steps = 0
    truncated = False
    while not truncated:
        _, _, terminated, truncated, info = env.step(x)
        steps += 1
        assert not terminated
    assert steps == env.output_length + 1
    assert info["exact_match"] == 0.0


def test_reward_adapter_mixes_token_and_sentence_rewards():
    adapter = TranslationRewardAdapter(
        TranslationOptions(token_reward=0.5, sentence_reward="bleu", sentence_reward_weight=2.0)
    )
    assert adapter.training_reward(1.0, {"token_correct": 1.0}) == 0.5
    ending = {"token_correct": 1.0, "exact_match": 1.0, "token_accuracy": 1.0, "bleu": 0.25, "chrf": 0.5}
    assert adapter.training_reward(1.0, ending) == pytest.approx(0.5 + 2.0 * 0.25)
    episode = adapter.new_episode()
    episode.add_step(1.0, {"token_correct": 1.0})
    episode.add_step(1.0, ending)
    assert episode.summary() == {
        "return": 2.0,
        "length": 2.0,
        "exact_match": 1.0,
        "token_accuracy": 1.0,
        "bleu": 0.25,
        "chrf": 0.5,
    }


def test_options_refuse_a_reward_of_nothing():
    with pytest.raises(ValueError, match="every reward is switched off"):
        TranslationOptions(token_reward=0.0)


def test_test_part_walks_the_held_out_pairs_by_seed():
    env = TextAsActionEnv(_tiny_corpus(), part="test")
    assert [env.reset(seed=s)[1]["pair_index"] for s in (0, 1, 2, 3)] == [0, 1, 0, 1]
    assert env.reset()[1]["pair_index"] == 0  # unseeded: the next pair after the last one


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50, 333])
def test_validation_pairs_leave_training_and_keep_the_vocabulary(size):
    """Against the brute-force reading: validation and kept training pairs partition the training
    pairs, the draw is seeded, and the word ids never depend on it."""
    train = [Pair((f"w{i % 6}", f"n{i}"), (f"T{i % 4}",) * (1 + i % 3)) for i in range(size + 1)]
    test = [Pair(("w0",), ("T0",))]
    whole = ParallelCorpus.from_parts(train, test)
    for held in sorted({0, 1, size // 2, size}):
        corpus = ParallelCorpus.from_parts(train, test, validation_pairs=held, seed=3)
        assert len(corpus.validation) == held and len(corpus.train) == len(train) - held
        assert sorted(corpus.train + corpus.validation, key=train.index) == train
        assert corpus.vocabulary == whole.vocabulary
        assert corpus == ParallelCorpus.from_parts(train, test, validation_pairs=held, seed=3)
    with pytest.raises(CorpusError, match=r"validation_pairs = .* would leave no training pairs"):
        ParallelCorpus.from_parts(train, test, validation_pairs=len(train))


def _longest_run_by_hand(words: tuple[str, ...]) -> int:
    """Every stretch of the words that is one unit of 1-3 words written whole some times over: the longest."""
    return max(
        (
            end - start
            for start in range(len(words))
            for end in range(start + 1, len(words) + 1)
            for unit in (1, 2, 3)
            if (end - start) % unit == 0 and words[start:end] == words[start : start + unit] * ((end - start) // unit)
        ),
        default=0,
    )


@pytest.mark.parametrize("alphabet", [1, 2, 3, 5])
def test_longest_run_matches_every_stretch_by_hand(alphabet):
    """Against trying every stretch: words of every length up to 14 over small alphabets, so runs of
    one, two and three-word units occur, overlap and break."""
    rng = np.random.default_rng(alphabet)
    for length in range(15):
        for _ in range(40):
            words = tuple(f"W{w}" for w in rng.integers(alphabet, size=length))
            assert longest_run(words) == _longest_run_by_hand(words), words


def _varied_targets(size: int) -> list[Pair]:
    """Pairs whose targets mix repeated units and breaks, so output length and longest run disagree."""
    rng = np.random.default_rng(size)
    return [
        Pair((f"w{i % 6}", f"n{i}"), tuple(f"T{w}" for w in rng.integers(1 + i % 3, size=1 + (i * 7) % 11)))
        for i in range(size + 1)
    ]


@pytest.mark.parametrize("held_out", ["longest", "longest_run"])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 50, 333])
def test_longest_validation_pairs_are_the_longest_by_their_measure(size, held_out):
    """Against sorting by hand: the held-out pairs are a partition's longest outputs or longest runs
    (every one at least as long as every pair kept), as many as asked, the same for the same seed."""
    measure = len if held_out == "longest" else _longest_run_by_hand
    train = _varied_targets(size)
    test = [Pair(("w0",), ("T0",))]
    lengths = sorted((measure(p.target) for p in train), reverse=True)
    for held in sorted({0, 1, size // 2, size}):
        for seed in (0, 3):
            corpus = ParallelCorpus.from_parts(train, test, held, seed, held_out=held_out)
            assert sorted(corpus.train + corpus.validation, key=train.index) == train
            assert sorted((measure(p.target) for p in corpus.validation), reverse=True) == lengths[:held]
            if held:
                assert min(measure(p.target) for p in corpus.validation) >= max(measure(p.target) for p in corpus.train)
            assert corpus == ParallelCorpus.from_parts(train, test, held, seed, held_out=held_out)
    if size >= 50 and lengths[size // 2 - 1] == lengths[size // 2]:  # a tie at the cut is broken by the draw
        cut = [ParallelCorpus.from_parts(train, test, size // 2, s, held_out=held_out).validation for s in range(4)]
        assert len(set(cut)) > 1


def test_the_validation_part_is_refused_when_empty_and_must_be_scored_once():
    overrides = [*SMALL_MODEL, "domain_options.validation_pairs=0"]
    with pytest.raises(TaskFileError, match=r"'eval.validation_env_kwargs'.*validation_pairs > 0"):
        prepare_task(load_task(TASKS / "scan-simple.yaml", overrides))
    prepare_task(load_task(TASKS / "scan-simple.yaml", [*overrides, "eval.every_env_steps=0", "eval.keep_best=false"]))
    with pytest.raises(TaskFileError, match=r"eval.episodes_during_training' = 1,000.*=500 to score each once"):
        prepare_task(load_task(TASKS / "scan-simple.yaml", [*SMALL_MODEL, "domain_options.validation_pairs=500"]))


def test_oracle_length_gives_the_length_masks_the_end_and_ends_the_sentence():
    corpus = _tiny_corpus()
    env = TextAsActionEnv(corpus, part="test", oracle_length=True)
    encoder = SentenceEncoder(corpus.vocabulary, corpus.max_source_length, corpus.max_output_length, 8)
    x, y = corpus.vocabulary.actions_for(["X", "Y"])
    observation, _ = env.reset(seed=0)  # "b a" -> "Y X": two words
    assert observation[-1] == 2
    masks = [encoder.action_mask(torch.as_tensor(observation[None]))[0, END_ACTION].item()]
    observation, reward, terminated, _, _ = env.step(y)
    masks.append(encoder.action_mask(torch.as_tensor(observation[None]))[0, END_ACTION].item())
    assert masks == [False, False] and reward == 1.0 and not terminated  # the end stays masked until 2 words
    _, reward, terminated, truncated, info = env.step(x)
    assert (reward, terminated, truncated, info["exact_match"], info["token_accuracy"]) == (1.0, True, False, 1.0, 1.0)
    plain = TextAsActionEnv(corpus, part="test")
    observation, _ = plain.reset(seed=0)
    assert observation[-1] == 0 and encoder.action_mask(torch.as_tensor(observation[None])) is None
    _, _, terminated, _, _ = plain.step(y)
    _, _, terminated_after_two, _, _ = plain.step(x)
    assert not terminated and not terminated_after_two  # without the oracle the agent must end it


def test_relative_target_positions_depend_on_the_distance_back_only():
    """A word written k steps ago looks the same whatever the sentence's length so far, and the query
    carries no position: a longer output than any in training meets no untrained embedding."""
    corpus = ParallelCorpus.from_parts([Pair(("a",), ("X",) * 30)], [Pair(("a",), ("X",) * 30)])
    torch.manual_seed(0)
    encoder = SentenceEncoder(corpus.vocabulary, 1, 30, 8, positions="relative", relative_clip=4)
    x = corpus.vocabulary.actions_for(["X"])[0]

    def observation(written: int) -> torch.Tensor:
        row = torch.zeros(1 + 30 + 1)
        row[0], row[1 : 1 + written] = 1, x
        return row[None]

    short, long = encoder(observation(6)).embeddings_BTD[0], encoder(observation(25)).embeddings_BTD[0]
    assert torch.equal(short[0], long[0])  # the query
    assert torch.equal(short[2 + 6 - 4 : 2 + 6], long[2 + 25 - 4 : 2 + 25])  # the last 4 words, distances 4..1
    assert torch.equal(long[2], long[2 + 25 - 5])  # distances 25 and 5: both past the clip
    absolute = SentenceEncoder(corpus.vocabulary, 1, 30, 8)
    assert not torch.equal(
        absolute(observation(6)).embeddings_BTD[0, 0], absolute(observation(25)).embeddings_BTD[0, 0]
    )
    with pytest.raises(ValueError, match="positions must be one of"):
        SentenceEncoder(corpus.vocabulary, 1, 30, 8, positions="rotary")


def test_recurrent_target_positions_match_an_lstm_run_on_each_row_alone():
    """``target_positions: recurrent``: each written word's position is the LSTM's state after it, and
    the query's the state after the last word (0 before any). Checked against the LSTM run on each
    row's own words, unpadded, over batches of many lengths: padding and other rows change nothing."""
    vocabulary = ParallelCorpus.from_parts([Pair(("a",), ("X", "Y", "Z"))], [Pair(("a",), ("X",))]).vocabulary
    generator = torch.Generator().manual_seed(0)
    for output_length in (1, 2, 5, 13, 48):
        torch.manual_seed(output_length)
        encoder = SentenceEncoder(vocabulary, 1, output_length, 8, positions="recurrent")
        written = torch.randint(0, output_length + 1, (7,), generator=generator)
        written[0] = 0  # a row with nothing written yet
        prefix = torch.randint(1, 4, (7, output_length), generator=generator)
        prefix[torch.arange(output_length) >= written.unsqueeze(1)] = 0
        observations = torch.cat([torch.ones(7, 1), prefix.float(), torch.zeros(7, 1)], dim=1)
        tokens = encoder(observations).embeddings_BTD.detach()
        target_segment = encoder.segment.weight[TARGET_SEGMENT]
        for row, count in enumerate(written.tolist()):
            words = encoder.target_word(prefix[row, :count])
            states = encoder.target_recurrence(words[None])[0][0] if count else torch.zeros(0, 8)
            expected_words = (words + states + target_segment).detach()
            torch.testing.assert_close(tokens[row, 2 : 2 + count], expected_words)
            last = states[-1] if count else torch.zeros(8)
            expected_query = (encoder.write_query + last + encoder.segment.weight[QUERY_SEGMENT]).detach()
            torch.testing.assert_close(tokens[row, 0], expected_query)


@pytest.mark.parametrize("vocabulary_size", [2, 3, 8])
def test_occurrence_counts_match_counting_each_row_by_hand(vocabulary_size):
    from attnq_translation.encoder import occurrence_counts

    generator = torch.Generator().manual_seed(vocabulary_size)
    for length in (1, 2, 3, 7, 22, 48):
        written = torch.randint(0, length + 1, (9,), generator=generator)
        ids = torch.randint(1, vocabulary_size, (9, length), generator=generator)
        ids[torch.arange(length) >= written.unsqueeze(1)] = 0
        expected = [[row[: k + 1].count(word) if word else 0 for k, word in enumerate(row)] for row in ids.tolist()]
        assert occurrence_counts(ids, vocabulary_size).tolist() == expected


def test_occurrence_counts_add_one_shared_embedding_per_count_to_the_written_words():
    """``occurrence_counts: true``: the third X and the third Y carry the same count embedding, on top
    of what the words carry without it; the query and the source are unchanged."""
    vocabulary = ParallelCorpus.from_parts([Pair(("a",), ("X", "Y"))], [Pair(("a",), ("X",))]).vocabulary
    x, y = vocabulary.actions_for(["X", "Y"])
    torch.manual_seed(0)
    counted = SentenceEncoder(vocabulary, 1, 8, 8, positions="recurrent", occurrences=True)
    plain = SentenceEncoder(vocabulary, 1, 8, 8, positions="recurrent")
    plain.load_state_dict({k: v for k, v in counted.state_dict().items() if "occurrence" not in k})
    prefix = torch.tensor([[x, y, x, y, x, y, 0, 0]], dtype=torch.float32)
    observation = torch.cat([torch.ones(1, 1), prefix, torch.zeros(1, 1)], dim=1)
    added = (counted(observation).embeddings_BTD - plain(observation).embeddings_BTD)[0].detach()
    assert torch.equal(added[:2], torch.zeros(2, 8))  # the query and the source word
    table = counted.target_occurrence.weight.detach()
    for place, count in enumerate([1, 1, 2, 2, 3, 3, 0, 0]):
        torch.testing.assert_close(added[2 + place], table[count])


def _run_back_by_hand(row: list[int], period: int) -> int:
    """How many words back from the last one in a row equal the word ``period`` before them."""
    run = 0
    while period and len(row) - 1 - run - period >= 0 and row[len(row) - 1 - run] == row[len(row) - 1 - run - period]:
        run += 1
    return run


def _repetition_by_hand(row: list[int], longest_period: int) -> list[tuple[int, int, int]]:
    """(period, whole units, phase) per word: walk back from each word while it repeats the word p before."""
    features = []
    for i, word in enumerate(row):
        best_run, best_period = 0, 0
        for period in range(1, longest_period + 1):
            run = _run_back_by_hand(row[: i + 1], period) if word else 0
            if run > best_run:
                best_run, best_period = run, period
        span = best_run + best_period
        features.append((best_period, span // best_period, span % best_period) if best_period else (0, 0, 0))
    return features


@pytest.mark.parametrize("vocabulary_size", [2, 3, 5])
@pytest.mark.parametrize("longest_period", [1, 2, 3, 8])
def test_repetitions_match_walking_back_by_hand(vocabulary_size, longest_period):
    from attnq_translation.encoder import repetitions

    generator = torch.Generator().manual_seed(vocabulary_size * 10 + longest_period)
    for length in (1, 2, 3, 5, 9, 22, 48):
        written = torch.randint(0, length + 1, (9,), generator=generator)
        ids = torch.randint(1, vocabulary_size, (9, length), generator=generator)
        units = torch.randint(1, vocabulary_size, (9, 3), generator=generator)
        ids[:3] = units[:3].repeat(1, length)[:, :length]  # long runs with periods 3 and less
        ids[torch.arange(length) >= written.unsqueeze(1)] = 0
        period, count, phase = repetitions(ids, longest_period)
        got = torch.stack([period, count, phase], dim=-1).tolist()
        expected = [[list(f) for f in _repetition_by_hand(row, longest_period)] for row in ids.tolist()]
        assert got == expected


def test_repetition_features_count_units_and_reach_the_query():
    """``repetition_period``: in X Y X Y X the fifth word is the third unit's first (period 2, 2 whole
    units, phase 1), and the query carries the last word's features; the source is unchanged."""
    vocabulary = ParallelCorpus.from_parts([Pair(("a",), ("X", "Y"))], [Pair(("a",), ("X",))]).vocabulary
    x, y = vocabulary.actions_for(["X", "Y"])
    torch.manual_seed(0)
    counted = SentenceEncoder(vocabulary, 1, 8, 8, positions="recurrent", repetition_period=3)
    plain = SentenceEncoder(vocabulary, 1, 8, 8, positions="recurrent")
    plain.load_state_dict({k: v for k, v in counted.state_dict().items() if "repetition" not in k})
    prefix = torch.tensor([[x, y, x, y, x, 0, 0, 0], [0] * 8], dtype=torch.float32)
    observations = torch.cat([torch.ones(2, 1), prefix, torch.zeros(2, 1)], dim=1)
    added = (counted(observations).embeddings_BTD - plain(observations).embeddings_BTD).detach()

    def features(period, units, phase):
        return (
            counted.repetition_unit.weight[period]
            + counted.repetition_count.weight[units]
            + counted.repetition_phase.weight[phase]
        ).detach()

    expected = [(0, 0, 0), (0, 0, 0), (2, 1, 1), (2, 2, 0), (2, 2, 1)] + [(0, 0, 0)] * 3
    for place, triple in enumerate(expected):
        torch.testing.assert_close(added[0, 2 + place], features(*triple))
    torch.testing.assert_close(added[0, 0], features(2, 2, 1))  # the query: the last written word's
    assert torch.equal(added[:, 1], torch.zeros(2, 8))  # the source word
    assert torch.equal(added[1, 0], torch.zeros(8))  # nothing written: the query gets nothing


@pytest.mark.parametrize("shown", [("units", "phase"), ("units",), ("period", "phase"), ("period",)])
def test_repetition_features_add_only_the_tables_they_name(shown):
    """``repetition_features`` leaves out the others' tables: what all three add, less what the named
    ones add, is exactly the left-out tables' rows at each word's (period, units, phase)."""
    vocabulary = ParallelCorpus.from_parts([Pair(("a",), ("X", "Y"))], [Pair(("a",), ("X",))]).vocabulary
    x, y = vocabulary.actions_for(["X", "Y"])
    torch.manual_seed(0)
    every = SentenceEncoder(vocabulary, 1, 8, 8, positions="recurrent", repetition_period=3)
    some = SentenceEncoder(vocabulary, 1, 8, 8, positions="recurrent", repetition_period=3, repetition_features=shown)
    tables = {"period": every.repetition_unit, "units": every.repetition_count, "phase": every.repetition_phase}
    left_out = [name for name in tables if name not in shown]
    some.load_state_dict({k: v for k, v in every.state_dict().items() if k in some.state_dict()})
    assert len(some.state_dict()) == len(every.state_dict()) - len(left_out)
    prefix = torch.tensor([[x, y, x, y, x, x, 0, 0]], dtype=torch.float32)
    observations = torch.cat([torch.ones(1, 1), prefix, torch.zeros(1, 1)], dim=1)
    missing = (every(observations).embeddings_BTD - some(observations).embeddings_BTD).detach()
    expected = [(0, 0, 0), (0, 0, 0), (2, 1, 1), (2, 2, 0), (2, 2, 1), (1, 2, 0), (0, 0, 0), (0, 0, 0)]
    for place, triple in enumerate(expected):
        rows = dict(zip(tables, triple))
        want = sum((tables[n].weight[rows[n]] for n in left_out), torch.zeros(8)).detach()
        torch.testing.assert_close(missing[0, 2 + place], want)
    torch.testing.assert_close(missing[0, 0], missing[0, 2 + 5])  # the query: the last written word's


@pytest.mark.parametrize("longest_period", [1, 2, 3, 8])
def test_period_tokens_read_the_last_words_run_at_every_period(longest_period):
    """``period_tokens``: right after the query, token p carries p, the last written word's run back at
    period p in whole p-word units (0 without a run) and its place in the unit, counted by hand."""
    vocabulary = ParallelCorpus.from_parts([Pair(("a",), ("X", "Y", "Z"))], [Pair(("a",), ("X",))]).vocabulary
    generator = torch.Generator().manual_seed(longest_period)
    encoder = SentenceEncoder(
        vocabulary, 1, 48, 8, positions="recurrent", repetition_period=longest_period, period_tokens=True
    )
    assert encoder.num_tokens == 1 + longest_period + 1 + 48
    for length in (0, 1, 2, 5, 12, 24, 48):
        unit = torch.randint(1, 4, (3,), generator=generator).tolist()
        for row in (torch.randint(1, 4, (length,), generator=generator).tolist(), (unit * 16)[:length]):
            prefix = torch.tensor([row + [0] * (48 - length)], dtype=torch.float32)
            observations = torch.cat([torch.ones(1, 1), prefix, torch.zeros(1, 1)], dim=1)
            tokens = encoder(observations)
            assert tokens.mask_BT[0, : 1 + longest_period].all()
            for period in range(1, longest_period + 1):
                run = _run_back_by_hand(row, period)
                span = run + period if run else 0
                expected = (
                    encoder.block_period.weight[period]
                    + encoder.block_count.weight[span // period]
                    + encoder.block_phase.weight[span % period]
                )
                torch.testing.assert_close(tokens.embeddings_BTD[0, period], expected)
    labels = encoder.token_labels(observations[0].numpy())
    assert len(labels) == encoder.num_tokens and labels[1] == "period 1"


@pytest.mark.parametrize("longest_period", [1, 2, 3, 8])
def test_block_tokens_read_the_last_words_run_in_blocks_of_its_units(longest_period):
    """``block_tokens``: token m carries m, the last written word's run back at m units of its
    repetition period (walked back by hand) in whole m-unit blocks, and how many whole units into the
    block it is; all counts 0 where the word continues no repetition."""
    vocabulary = ParallelCorpus.from_parts([Pair(("a",), ("X", "Y", "Z"))], [Pair(("a",), ("X",))]).vocabulary
    generator = torch.Generator().manual_seed(longest_period)
    encoder = SentenceEncoder(
        vocabulary, 1, 48, 8, positions="recurrent", repetition_period=longest_period, block_tokens=True
    )
    assert encoder.num_tokens == 1 + longest_period + 1 + 48
    for length in (0, 1, 2, 3, 5, 9, 12, 24, 48):
        for unit_length in (1, 2, 3):
            unit = torch.randint(1, 4, (unit_length,), generator=generator).tolist()
            for row in (torch.randint(1, 4, (length,), generator=generator).tolist(), (unit * 48)[:length]):
                prefix = torch.tensor([row + [0] * (48 - length)], dtype=torch.float32)
                observations = torch.cat([torch.ones(1, 1), prefix, torch.zeros(1, 1)], dim=1)
                tokens = encoder(observations)
                unit_period = _repetition_by_hand(row, longest_period)[-1][0] if row else 0
                for blocks in range(1, longest_period + 1):
                    period = blocks * unit_period
                    run = _run_back_by_hand(row, period)
                    span = run + period if run else 0
                    count, place = (span // period, span % period // unit_period) if run else (0, 0)
                    expected = (
                        encoder.block_period.weight[blocks]
                        + encoder.block_count.weight[count]
                        + encoder.block_phase.weight[place]
                    )
                    torch.testing.assert_close(tokens.embeddings_BTD[0, blocks], expected)
    labels = encoder.token_labels(observations[0].numpy())
    assert len(labels) == encoder.num_tokens and labels[1] == "block 1"


def test_block_tokens_read_twelve_two_word_units_as_twelve_one_word_units():
    """What the option is for: after every whole unit of "X around D thrice" (I_TURN I_X twelve times)
    the block tokens read as after the same unit of "turn around D thrice" (twelve I_TURNs); period
    tokens, counted in words, do not once a unit repeats."""
    vocabulary = ParallelCorpus.from_parts([Pair(("a",), ("L", "J"))], [Pair(("a",), ("L",))]).vocabulary
    turn, verb = vocabulary.actions_for(["L", "J"])
    torch.manual_seed(0)
    by_blocks = SentenceEncoder(vocabulary, 1, 24, 8, positions="recurrent", repetition_period=8, block_tokens=True)
    by_words = SentenceEncoder(vocabulary, 1, 24, 8, positions="recurrent", repetition_period=8, period_tokens=True)

    def read(encoder, row):
        prefix = torch.tensor([row + [0] * (24 - len(row))], dtype=torch.float32)
        observations = torch.cat([torch.ones(1, 1), prefix, torch.zeros(1, 1)], dim=1)
        return encoder(observations).embeddings_BTD[0, 1:9]

    for units in range(1, 13):
        torch.testing.assert_close(read(by_blocks, [turn, verb] * units), read(by_blocks, [turn] * units))
        repeated = units > 1
        assert repeated != torch.equal(read(by_words, [turn, verb] * units), read(by_words, [turn] * units))


@pytest.mark.parametrize("positions", ["absolute", "recurrent"])
def test_written_word_dropout_hides_words_only_while_training(positions):
    """``written_word_dropout``: in training mode each written word's identity embedding is zeroed or
    kept whole (the source, positions and repetition counts untouched); evaluation sees every word."""
    vocabulary = ParallelCorpus.from_parts([Pair(("a", "b"), ("X", "Y", "Z"))], [Pair(("a",), ("X",))]).vocabulary
    torch.manual_seed(0)
    plain = SentenceEncoder(vocabulary, 2, 24, 8, positions=positions, repetition_period=3)
    dropping = SentenceEncoder(vocabulary, 2, 24, 8, positions=positions, repetition_period=3, written_word_dropout=0.5)
    dropping.load_state_dict(plain.state_dict())
    generator = torch.Generator().manual_seed(1)
    prefix_BL = torch.randint(1, 4, (64, 24), generator=generator)
    prefix_BL[:, 20:] = 0  # padding after 20 written words
    observations = torch.cat([torch.ones(64, 1), torch.full((64, 1), 2.0), prefix_BL.float(), torch.zeros(64, 1)], 1)
    dropping.eval()
    torch.testing.assert_close(dropping(observations).embeddings_BTD, plain(observations).embeddings_BTD)
    dropping.train()
    got_BTD = dropping(observations).embeddings_BTD.detach()
    want_BTD = plain(observations).embeddings_BTD.detach()
    torch.testing.assert_close(got_BTD[:, 1:3], want_BTD[:, 1:3])  # the source
    if positions == "recurrent":  # the LSTM reads the hidden words too, so only the shares are checked
        assert not torch.allclose(got_BTD[:, 3:23], want_BTD[:, 3:23])
        return
    words_BLD = plain.target_word(prefix_BL).detach()
    kept_BL = torch.isclose(got_BTD[:, 3:], want_BTD[:, 3:]).all(dim=-1)
    hidden_BL = torch.isclose(got_BTD[:, 3:], want_BTD[:, 3:] - words_BLD, atol=1e-6).all(dim=-1)
    written_BL = prefix_BL != 0
    assert (kept_BL | hidden_BL).all()
    share = hidden_BL[written_BL].float().mean().item()
    assert 0.4 < share < 0.6, share  # 1,280 written words, each hidden with probability 0.5


def test_written_word_dropout_is_a_probability():
    with pytest.raises(TaskFileError, match="written_word_dropout"):
        prepare_task(load_task(TASKS / "scan-length.yaml", ["domain_options.written_word_dropout=1.0"]))


@pytest.mark.parametrize("positions", ["absolute", "relative", "recurrent"])
def test_hidden_written_words_leave_only_positions_and_counts(positions):
    """``hide_written_words``: in training and evaluation, renaming the written words (a permutation,
    so every repetition stays) changes no token, while the plain encoder's tokens change."""
    vocabulary = ParallelCorpus.from_parts(
        [Pair(("a", "b"), ("V", "W", "X", "Y", "Z"))], [Pair(("a",), ("V",))]
    ).vocabulary
    torch.manual_seed(0)
    hiding = SentenceEncoder(vocabulary, 2, 24, 8, positions=positions, repetition_period=3, hide_written_words=True)
    plain = SentenceEncoder(vocabulary, 2, 24, 8, positions=positions, repetition_period=3)
    plain.load_state_dict(hiding.state_dict())
    generator = torch.Generator().manual_seed(2)
    for written in (1, 2, 7, 15, 24):
        prefix_BL = torch.randint(1, 6, (16, 24), generator=generator)
        prefix_BL[:, written:] = 0
        names_V = torch.cat([torch.zeros(1, dtype=torch.long), torch.randperm(5, generator=generator) + 1])
        renamed_BL = names_V[prefix_BL]  # padding stays 0
        observations, renamed = (
            torch.cat([torch.ones(16, 1), torch.full((16, 1), 2.0), ids.float(), torch.zeros(16, 1)], 1)
            for ids in (prefix_BL, renamed_BL)
        )
        for mode in (hiding.train, hiding.eval):
            mode()
            torch.testing.assert_close(hiding(observations).embeddings_BTD, hiding(renamed).embeddings_BTD)
        if (renamed_BL != prefix_BL).any():
            assert not torch.allclose(plain(observations).embeddings_BTD, plain(renamed).embeddings_BTD)


def test_hidden_written_words_refuse_word_dropout():
    with pytest.raises(TaskFileError, match="hide_written_words"):
        prepare_task(
            load_task(
                TASKS / "scan-length.yaml",
                ["domain_options.hide_written_words=true", "domain_options.written_word_dropout=0.5"],
            )
        )


@pytest.mark.parametrize("tokens", ["period_tokens", "block_tokens"])
def test_period_tokens_need_a_repetition_period(tokens):
    with pytest.raises(TaskFileError, match=tokens):
        prepare_task(
            load_task(
                TASKS / "scan-length.yaml", ["domain_options.repetition_period=0", f"domain_options.{tokens}=true"]
            )
        )


def test_period_and_block_tokens_are_one_or_the_other():
    with pytest.raises(TaskFileError, match="set one of them"):
        prepare_task(
            load_task(
                TASKS / "scan-length.yaml", ["domain_options.period_tokens=true", "domain_options.block_tokens=true"]
            )
        )


def test_repetition_features_name_only_known_features():
    for features in ("[speed]", "[]"):
        with pytest.raises(TaskFileError, match="repetition_features"):
            prepare_task(load_task(TASKS / "scan-length.yaml", [f"domain_options.repetition_features={features}"]))


def test_an_oracle_length_variant_is_reported_beside_the_plain_evaluation():
    """scan-length's ``oracle_length`` variant: the same test pairs with the length given. A policy
    that always ends at once scores nothing plainly; given the length, it writes every sentence out."""
    from attnq.evaluation import policy_metrics

    runtime = prepare_task(load_task(TASKS / "scan-length.yaml", [*SMALL_MODEL, "eval.episodes=40"]))
    network = runtime.build_q_network()

    def end_at_once(observations):
        q_values = torch.zeros(len(observations), runtime.num_actions)
        q_values[:, END_ACTION] = 1.0  # ends whenever the end is admissible, else writes word 1
        mask = network.encoder.action_mask(torch.as_tensor(observations))
        return (q_values if mask is None else q_values.masked_fill(~mask, -1.0)).argmax(dim=1).numpy()

    _, metrics = policy_metrics(runtime, end_at_once, episodes=40, seed=0)
    assert metrics["length"] == 1.0 and metrics["exact_match"] == 0.0
    # by hand: word 1 at every position of each reference, then the end the oracle supplies
    references = runtime.make_env(evaluation=True).unwrapped.references[:40]
    expected = np.mean([(sum(a == 1 for a in reference) + 1) / (len(reference) + 1) for reference in references])
    assert metrics["token_accuracy@oracle_length"] == pytest.approx(expected)
    assert metrics["exact_match@oracle_length"] == np.mean([set(reference) == {1} for reference in references])
    assert "return@oracle_length" not in metrics  # only the metrics the variant names


def test_file_loaders_read_scan_and_tsv(tmp_path):
    scan_file = tmp_path / "tasks_train.txt"
    scan_file.write_text("IN: jump left OUT: I_TURN_LEFT I_JUMP\n\nIN: walk OUT: I_WALK\n", encoding="utf-8")
    assert load_pairs(scan_file) == [Pair(("jump", "left"), ("I_TURN_LEFT", "I_JUMP")), Pair(("walk",), ("I_WALK",))]
    tsv_file = tmp_path / "de-en.tsv"
    tsv_file.write_text("ein Haus\ta house\nHallo\thello\n", encoding="utf-8")
    assert load_pairs(tsv_file) == [Pair(("ein", "Haus"), ("a", "house")), Pair(("Hallo",), ("hello",))]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("IN: walk OUT: I_WALK\nIN: run I_RUN\n", 2, "expected 'IN:"),
        ("a\tb\nc d e\n", 2, "2 tab-separated fields"),
        ("a\tb\n\t x\n", 2, "source side is empty"),
        ("a\tb\nc\td\te\n", 2, "found 3"),
    ],
)
def test_file_loaders_name_the_file_and_line_of_a_bad_pair(tmp_path, text, line, message):
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError) as raised:
        load_pairs(path)
    assert f"{path}, line {line}" in str(raised.value) and message in str(raised.value)


def test_missing_corpus_file_is_a_clear_cli_error(tmp_path):
    task = TASKS / "scan-simple.yaml"
    completed = subprocess.run(
        attnq_command(
            "train",
            str(task),
            "--runs-dir",
            str(tmp_path),
            "--set",
            *files_corpus(tmp_path / "nope.tsv", tmp_path / "nope.tsv"),
        ),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert "nope.tsv does not exist" in completed.stderr and "Traceback" not in completed.stderr
    assert not any(tmp_path.iterdir()), "no run folder is left behind"


def test_files_corpus_without_a_test_file_names_the_field():
    with pytest.raises(TaskFileError, match="domain_options"):
        prepare_task(
            load_task(TASKS / "scan-simple.yaml", ["domain_options.corpus=files", "domain_options.train_file=x.tsv"])
        )


def test_encoder_tokens_mask_padding_and_label_both_segments():
    runtime = prepare_task(load_task(TASKS / "scan-simple.yaml", SMALL_MODEL))
    env = runtime.make_env(evaluation=True)
    observation, _ = env.reset(seed=5)
    source = env.corpus.test[5].source
    observation, *_ = env.step(1)
    network = runtime.build_q_network()
    tokens = network.encoder(torch.as_tensor(observation[None]))
    assert tokens.embeddings_BTD.shape == (1, 1 + 9 + 48, 32) and tokens.query_index == 0
    assert tokens.mask_BT[0].sum().item() == 1 + len(source) + 1
    labels = network.encoder.token_labels(observation)
    assert labels[0] == "write #2"
    assert labels[1 : 1 + len(source)] == [f"{i + 1}:{w}" for i, w in enumerate(source)]
    assert labels[1 + 9] == f"out 1: {env.corpus.vocabulary.action_names()[1]}"
    assert runtime.action_names()[0] == "<eos>" and runtime.num_actions == 7
    output = network(torch.as_tensor(observation[None]), return_attention=True)
    assert output.attention[0][0, :, 0, ~tokens.mask_BT[0]].abs().max() == 0.0  # padding gets no attention


def _write_tiny_tsv(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("a\tX\nb\tY\na b\tX Y\nb a\tY X\n", encoding="utf-8")
    test = tmp_path / "test.tsv"
    test.write_text("a a\tX X\nb b\tY Y\n", encoding="utf-8")
    return train, test


def test_short_real_training_run_on_a_corpus_file(tmp_path):
    train_file, test_file = _write_tiny_tsv(tmp_path)
    task = load_task(
        TASKS / "scan-simple.yaml",
        SMALL_MODEL
        + [
            *files_corpus(train_file, test_file),
            "env.num_envs=8",
            "trainer.max_env_steps=1600",
            "trainer.checkpoint_every_env_steps=800",
            "trainer.progress_bar=false",
            "learner.learning_starts=200",
            "replay.batch_size=32",
            "eval.episodes=2",
            # one of the 4 training pairs chooses the checkpoint, in the validation rounds at 800 and 1600
            "domain_options.validation_pairs=1",
            "eval.episodes_during_training=1",
            "eval.every_env_steps=800",
            "eval.keep_best=true",
        ],
    )
    result = train(task, runs_dir=tmp_path / "runs")
    assert result.env_steps >= 1600
    assert (result.run_dir / "checkpoints" / "best.ckpt").is_file()
    from attnq.agent import load_agent

    agent = load_agent(str(result.run_dir))
    assert agent.runtime.num_actions == 3  # <eos>, X, Y
    evaluation = evaluate_policy(agent.runtime, agent, episodes=2, seed=0)
    assert set(evaluation.means()) == {"return", "length", "exact_match", "token_accuracy", "bleu", "chrf"}
    means = evaluation.means()
    for metric in ("exact_match", "token_accuracy", "bleu", "chrf"):
        assert 0.0 <= means[metric] <= 1.0, (metric, means)

    explained = subprocess.run(
        attnq_command("explain", str(result.run_dir), "--out", str(tmp_path / "why")), capture_output=True, text=True
    )
    assert explained.returncode == 0, explained.stderr
    steps = json.loads((tmp_path / "why" / "attention.json").read_text())["steps"]
    assert steps[0]["labels"][:3] == ["write #1", "1:a", "2:a"]  # the first test pair, "a a"
    assert {s["action_name"] for s in steps} <= {"<eos>", "X", "Y"}
    assert np.isclose(sum(steps[0]["weights"]), 1.0, atol=1e-4)


def test_evaluation_episodes_must_fit_the_test_file(tmp_path):
    """Episode i scores test pair i mod N: more episodes than pairs would count pairs twice."""
    from attnq.runtime import prepare_task

    train_file, test_file = _write_tiny_tsv(tmp_path)
    pairs = len([line for line in test_file.read_text().splitlines() if line.strip()])
    files = [
        *files_corpus(train_file, test_file),
    ]
    with pytest.raises(TaskFileError, match=rf"field 'eval.episodes' = 4,182.*fix: set eval.episodes={pairs}"):
        prepare_task(load_task(TASKS / "scan-simple.yaml", files))
    with pytest.warns(UserWarning, match=rf"scores the first 1 of the test file's {pairs} pairs"):
        prepare_task(load_task(TASKS / "scan-simple.yaml", [*files, "eval.episodes=1"]))
    prepare_task(load_task(TASKS / "scan-simple.yaml", [*files, f"eval.episodes={pairs}"]))  # each pair once


def test_a_corpus_edited_after_training_is_refused_on_load_and_resume(tmp_path):
    """Word ids come from the corpus files, read again on every load: an edit would move them silently."""
    from attnq.agent import load_agent
    from attnq.checkpoints import export_policy
    from attnq.errors import CheckpointError

    train_file, test_file = _write_tiny_tsv(tmp_path)
    task = load_task(
        TASKS / "scan-simple.yaml",
        SMALL_MODEL
        + [
            *files_corpus(train_file, test_file),
            "env.num_envs=8",
            "trainer.max_env_steps=400",
            "trainer.progress_bar=false",
            "learner.learning_starts=100",
            "replay.batch_size=16",
            "eval.episodes=2",
        ],
    )
    result = train(task, runs_dir=tmp_path / "runs")
    export_policy(result.checkpoint, result.run_dir / "policy.ckpt")
    load_agent(str(result.run_dir))  # the same corpus: fine
    train_file.write_text("c\tZ\n" + train_file.read_text(), encoding="utf-8")  # a new first word: ids move
    from attnq_translation.options import build_corpus

    build_corpus.cache_clear()  # a new process reads the files again; this one caches them
    for path in (result.run_dir, result.run_dir / "policy.ckpt"):
        with pytest.raises(CheckpointError, match="trained on other 'translation' data"):
            load_agent(str(path))
    with pytest.raises(CheckpointError, match="fix: restore the data"):
        train(
            task.model_copy(update={"trainer": task.trainer.model_copy(update={"max_env_steps": 800})}),
            resume=result.run_dir,
        )


def test_relative_corpus_paths_are_saved_absolute_so_the_run_works_from_any_folder(tmp_path, monkeypatch):
    import yaml

    from attnq.catalog import load_named_task
    from attnq.registry import load_plugins

    data = tmp_path / "work" / "data"
    data.mkdir(parents=True)
    _write_tiny_tsv(data)
    files = [*files_corpus("data/train.tsv", "data/test.tsv"), "eval.episodes=2"]
    monkeypatch.chdir(tmp_path / "work")
    task = load_named_task("scan-simple", load_plugins(), files)
    assert (
        task.domain_options["train_file"] == str(data / "train.tsv")
        and Path(task.domain_options["test_file"]).is_absolute()
    )
    assert task.domain_options["corpus"] == "files"  # other options stay as written

    small = [*SMALL_MODEL, "env.num_envs=8", "trainer.max_env_steps=400", "trainer.progress_bar=false"]
    small += ["learner.learning_starts=100", "replay.batch_size=16"]
    trained = subprocess.run(
        attnq_command("train", "scan-simple", "--runs-dir", "runs", "--set", *files, *small),
        capture_output=True,
        text=True,
        cwd=tmp_path / "work",
    )
    assert trained.returncode == 0, trained.stderr
    [run_dir] = (tmp_path / "work" / "runs" / "scan-simple").iterdir()
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())["domain_options"]
    assert stored["train_file"] == str(data / "train.tsv") and stored["test_file"] == str(data / "test.tsv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    evaluated = subprocess.run(
        attnq_command("evaluate", str(run_dir), "--episodes", "2"), capture_output=True, text=True, cwd=elsewhere
    )
    assert evaluated.returncode == 0, evaluated.stderr


def _simulated_copies(reference, actions, words, copies, longest):
    """What the copy actions should do, step by step, written plainly: (output, written-by, reward,
    ended, cut off) after each action, for ``words`` target words and ``copies`` copy actions."""
    output, written_by, last_copy, steps = [], [], 0, []
    for step, action in enumerate(actions, start=1):
        if action == END_ACTION:
            steps.append((list(output), list(written_by), float(len(output) == len(reference)), True, False))
            return steps
        if action <= words:
            last_copy = 0
            if len(output) == longest:
                steps.append((list(output), list(written_by), 0.0, False, True))
                return steps
            right = len(output) < len(reference) and reference[len(output)] == action
            output.append(action)
            written_by.append(1)
            steps.append((list(output), list(written_by), float(right), False, False))
            continue
        again = action == words + 1 + copies
        k = last_copy if again else action - words
        if k == 0 or k > len(output):
            last_copy = 0
            steps.append((list(output), list(written_by), 0.0, False, step > longest))
        elif len(output) + k > longest:
            steps.append((list(output), list(written_by), 0.0, False, True))
        else:
            start = len(output)
            output += output[-k:]
            written_by += [copies + 2 if again else k + 1] * k
            last_copy = k
            right = output[start:] == list(reference[start : start + k])
            steps.append((list(output), list(written_by), float(k) if right else 0.0, False, step > longest))
        if steps[-1][4]:
            return steps
    return steps


def _repetitive_corpus(seed: int, longest: int) -> ParallelCorpus:
    """Random pairs whose outputs (1 to ``longest`` words of three) repeat words often."""
    rng = np.random.default_rng(seed)
    pairs = [
        Pair(("a",) * int(rng.integers(1, 4)), tuple(rng.choice(["X", "Y", "Z"], int(rng.integers(1, longest + 1)))))
        for _ in range(12)
    ]
    return ParallelCorpus.from_parts(pairs[:6], pairs[6:])


@pytest.mark.parametrize(("copies", "longest"), [(1, 3), (2, 6), (3, 9), (5, 12), (8, 16)])
def test_copy_actions_match_a_plain_simulation(copies, longest):
    """Random action sequences (words, copies of every size, AGAIN, the end) on random test pairs:
    outputs, the written-by block, rewards and episode ends as a plain list walk gives them."""
    corpus = _repetitive_corpus(copies, longest)
    env = TextAsActionEnv(corpus, part="test", copy_actions=copies)
    words = len(corpus.vocabulary.target_words)
    assert env.action_space.n == words + 1 + copies + 1
    rng = np.random.default_rng(copies)
    seen = set()
    for trial in range(300):
        pair = trial % len(corpus.test)
        env.reset(seed=pair)
        reference = env.references[pair]
        # the end rarely, so that long outputs and truncation come up
        drawn = rng.integers(0, env.action_space.n, 3 * env.output_length + 2)
        actions = [int(a) if a or rng.random() < 0.1 else 1 for a in drawn]
        expected = _simulated_copies(reference, actions, words, copies, env.output_length)
        for action, (output, written_by, reward, terminated, truncated) in zip(actions, expected, strict=False):
            observation, got_reward, got_terminated, got_truncated, info = env.step(action)
            prefix = observation[env.source_length : env.source_length + env.output_length]
            by = observation[env.source_length + env.output_length : -1]
            assert list(prefix[: len(output)]) == output and not prefix[len(output) :].any()
            assert list(by[: len(output)]) == written_by and not by[len(output) :].any()
            assert (got_reward, got_terminated, got_truncated) == (reward, terminated, truncated)
            seen.add((action > words, reward > 0, got_truncated))
        assert got_terminated or got_truncated
        assert info["exact_match"] == float(got_terminated and output == list(reference))
    assert {(True, True, False), (True, False, True)} <= seen  # right copies, and copies cut off


@pytest.mark.parametrize("copies", [0, 1, 3])
@pytest.mark.parametrize("oracle_length", [False, True])
def test_observation_layout_is_the_environments(copies, oracle_length):
    """The layout the encoder and the scripts read by: its row for a command and the words written
    one per action is the environment's observation at every step, and its split gives the parts back."""
    for longest in (1, 4, 9):
        corpus = _repetitive_corpus(longest, longest)
        env = TextAsActionEnv(corpus, part="test", oracle_length=oracle_length, copy_actions=copies)
        for pair in range(len(corpus.test)):
            observation, _ = env.reset(seed=pair)
            source, reference = env.source_ids[pair], list(env.references[pair])
            length = len(reference) if oracle_length else 0
            for written in range(len(reference) + 1):
                assert np.array_equal(observation, env.layout.row(source, reference[:written], length))
                got_source, prefix, written_by, given = env.layout.split(observation)
                assert list(got_source[: len(source)]) == list(source) and not got_source[len(source) :].any()
                assert list(prefix[:written]) == reference[:written] and not prefix[written:].any()
                by_words = [1] * written + [0] * (env.output_length - written) if copies else []
                assert list(written_by) == by_words and given == length
                if written < len(reference):
                    observation, *_ = env.step(reference[written])


def _fewest_copy_actions(target: list[int], words: int, copies: int) -> list[int]:
    """A shortest action sequence writing ``target`` (then the end), by breadth-first search over the
    written length: a word, or a copy of the last k <= ``copies`` words that matches what follows."""
    came_from = {0: None}
    frontier = [0]
    while len(target) not in came_from:
        reached = []
        for written in frontier:
            moves = [(written + 1, target[written])]
            moves += [
                (written + k, words + k)
                for k in range(1, copies + 1)
                if k <= written and target[written : written + k] == target[written - k : written]
            ]
            for to, action in moves:
                if to <= len(target) and to not in came_from:
                    came_from[to] = (written, action)
                    reached.append(to)
        frontier = reached
    actions, at = [END_ACTION], len(target)
    while came_from[at]:
        at, action = came_from[at]
        actions.insert(0, action)
    return actions


def test_scan_length_outputs_written_with_copies_are_exact_and_earn_every_word():
    """Every 40th scan-length test output, written with its fewest copies: an exact match whose
    rewards add up to one per word and the end, in one step per action."""
    corpus = TranslationOptions(corpus="scan-length")
    env = TextAsActionEnv(build_corpus(corpus), part="test", copy_actions=8)
    words = len(env.corpus.vocabulary.target_words)
    for pair in range(0, len(env.references), 40):
        env.reset(seed=pair)
        reference = list(env.references[pair])
        actions = _fewest_copy_actions(reference, words, 8)
        assert len(actions) < len(reference)  # every test output repeats some words
        rewards = []
        for action in actions:
            _, reward, terminated, truncated, info = env.step(action)
            rewards.append(reward)
        assert terminated and not truncated and info["exact_match"] == 1.0
        assert sum(rewards) == len(reference) + 1


def test_copy_actions_reach_the_tokens_and_the_action_mask():
    """Which action wrote each word is added to its token and to the query; the end's mask spans the
    copy actions too."""
    corpus = _tiny_corpus()
    env = TextAsActionEnv(corpus, part="test", oracle_length=True, copy_actions=2)
    x = corpus.vocabulary.actions_for(["X"])[0]
    env.reset(seed=1)  # "a a" -> "X X"
    written_by_copy, _, _, _, _ = env.step(x)
    torch.manual_seed(0)
    encoder = SentenceEncoder(corpus.vocabulary, env.source_length, env.output_length, 8, copy_actions=2)
    typed = written_by_copy.copy()
    written_by_copy[env.source_length + env.output_length] = 2  # as if COPY 1 had written it
    tokens, copied = (encoder(torch.as_tensor(o[None])) for o in (typed, written_by_copy))
    first_written = 1 + env.source_length
    difference = copied.embeddings_BTD - tokens.embeddings_BTD
    expected = encoder.written_by.weight[2] - encoder.written_by.weight[1]
    torch.testing.assert_close(difference[0, first_written], expected)
    torch.testing.assert_close(difference[0, 0], expected)  # the query: the last written word's
    mask = encoder.action_mask(torch.as_tensor(typed[None]))
    assert mask.shape == (1, env.action_space.n) and not mask[0, END_ACTION] and mask[0, 1:].all()


def test_short_real_training_run_with_copy_actions(tmp_path):
    task = load_task(
        TASKS / "scan-length.yaml",
        SMALL_MODEL
        + [
            "domain_options.copy_actions=4",
            "env.num_envs=8",
            "trainer.max_env_steps=1200",
            "trainer.checkpoint_every_env_steps=1200",
            "trainer.progress_bar=false",
            "learner.learning_starts=200",
            "replay.batch_size=32",
            "eval.episodes=8",
        ],
    )
    result = train(task, runs_dir=tmp_path / "runs")
    from attnq.agent import load_agent

    agent = load_agent(str(result.run_dir))
    words = len(build_corpus(agent.runtime.context.options).vocabulary.target_words)
    assert agent.runtime.num_actions == words + 1 + 4 + 1
    assert agent.runtime.action_names()[-5:] == ["COPY 1", "COPY 2", "COPY 3", "COPY 4", "AGAIN"]
    means = evaluate_policy(agent.runtime, agent, episodes=8, seed=0).means()
    assert 0.0 <= means["exact_match"] <= 1.0 and means["length"] >= 1
