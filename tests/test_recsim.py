"""The recommendation domain on the real RecSim NG interest-evolution simulation."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from attnq.config import load_task
from attnq.domain import RandomPolicy
from attnq.evaluation import evaluate_policy
from attnq.runtime import prepare_task
from attnq.training.run import train
from attnq_recsim import compat
from attnq_recsim.baselines import (
    FIXED_SLATE_SEARCH_SEED,
    CollabFilteringPolicy,
    FixedSlatePolicy,
    ObservedAffinityPolicy,
)
from attnq_recsim.environment import AUTORESET_SEEDS_START, NO_DOC, InterestEvolutionVectorEnv, batch_seed
from attnq_recsim.options import EcosystemOptions, TokenLayout
from conftest import SMALL_MODEL, TASKS


@pytest.fixture(scope="module")
def options() -> EcosystemOptions:
    return EcosystemOptions(history_length=4, horizon=5)


def distinct_slates(rng: np.random.Generator, users: int, num_docs: int = 100, k: int = 2) -> np.ndarray:
    return np.stack([rng.choice(num_docs, k, replace=False) for _ in range(users)])


@pytest.mark.parametrize("workaround", compat.WORKAROUNDS, ids=lambda w: w.name)
def test_each_compatibility_workaround_is_still_needed(workaround):
    assert workaround.still_needed(), (
        f"RecSim NG's stack no longer needs the {workaround.name!r} workaround ({workaround.why}): "
        "delete it from plugins/attnq_recsim/compat.py"
    )


def test_attnq_and_its_plugins_load_without_tensorflow():
    code = (
        "import sys; from attnq.registry import load_plugins; host = load_plugins(); "
        "assert 'recsim' in host.registry, host.failures; "
        "print('tensorflow' in sys.modules, 'recsim_ng' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_a_slate_goes_in_and_each_users_choice_and_consumed_time_come_out(options):
    env = InterestEvolutionVectorEnv(options, 6, AutoresetMode.DISABLED)
    layout = TokenLayout.of(options)
    observations, _ = env.reset(seed=3)
    assert observations.shape == (6, layout.num_rows, layout.num_columns)
    assert (observations[:, layout.history_rows, layout.PRESENT] == 0).all()  # nothing consumed yet
    slates = distinct_slates(np.random.default_rng(0), 6)
    observations, rewards, terminated, truncated, info = env.step(slates)
    clicked = info["clicked"]
    np.testing.assert_array_equal(info["slate_choice"] < 2, clicked)  # the slot consumed, 2 = none
    # a consumed document is one of the slate's; its consumed time is RecSim NG's reward
    assert all(info["chosen_doc"][u] in slates[u] for u in np.flatnonzero(clicked))
    assert (info["chosen_doc"][~clicked] == NO_DOC).all()
    assert (rewards[clicked] > 0).all() and (rewards[~clicked] == 0).all()
    newest = observations[:, -1]
    np.testing.assert_allclose(newest[clicked, layout.consumed_time], rewards[clicked])
    np.testing.assert_array_equal(newest[clicked, layout.doc_index], info["chosen_doc"][clicked])
    assert not terminated.any() and not truncated.any()


def test_the_history_the_agent_sees_is_recsim_ngs_own_recommender_history(options):
    """RecSim NG's recommender state at step t+1 is built from the response at step t."""
    env = InterestEvolutionVectorEnv(options, 5, AutoresetMode.DISABLED)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    env.step(distinct_slates(rng, 5))
    for _ in range(options.horizon - 1):
        ours = np.where(env.history_docs != NO_DOC, env.history_docs + 1, 0)  # library ids: index + 1
        ours_time = env.history_time.copy()
        env.step(distinct_slates(rng, 5))
        library = env.ecosystem.network_value()["recommender state"]
        np.testing.assert_array_equal(np.asarray(library.get("doc_history.state")), ours)
        np.testing.assert_allclose(np.asarray(library.get("ctime_history.state")), ours_time, rtol=1e-6)


def test_the_reward_is_recsim_ngs_consumed_time_metric(options):
    """ConsumedTimeAsRewardMetrics records step t's reward at step t+1 (it reads the previous response)."""
    env = InterestEvolutionVectorEnv(options, 5, AutoresetMode.DISABLED)
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    rewards = [env.step(distinct_slates(rng, 5))[1] for _ in range(3)]
    library = env.ecosystem.network_value()["metrics state"]
    np.testing.assert_allclose(np.asarray(library.get("reward")), rewards[1], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(library.get("cumulative_reward")), rewards[0] + rewards[1], rtol=1e-5)


@pytest.mark.parametrize("users", [1, 3, 8])
def test_consumed_quality_is_the_mean_quality_of_what_users_consumed(options, users):
    """Checked against a brute-force count from each step's chosen documents, and in sign: slates of
    the corpus's best documents score above 0, slates of its worst below."""
    from attnq_recsim.reward import ConsumedTimeRewardAdapter

    env = InterestEvolutionVectorEnv(options, users, AutoresetMode.DISABLED)
    ranked = np.argsort(env.doc_quality)
    for slates, sign in ((None, None), (ranked[-2:], 1.0), (ranked[:2], -1.0)):
        env.reset(seed=users)
        rng = np.random.default_rng(users)
        episodes = [ConsumedTimeRewardAdapter().new_episode() for _ in range(users)]
        consumed: list[list[float]] = [[] for _ in range(users)]
        for _ in range(options.horizon):
            actions = distinct_slates(rng, users) if slates is None else np.tile(slates, (users, 1))
            _, _, _, _, info = env.step(actions)
            for i in range(users):
                step = {key: value[i] for key, value in info.items()}
                episodes[i].add_step(0.0, step)
                if step["clicked"]:
                    consumed[i].append(float(env.doc_quality[step["chosen_doc"]]))
        for episode, qualities in zip(episodes, consumed, strict=True):
            expected = float(np.mean(qualities)) if qualities else 0.0
            assert episode.summary()["consumed_quality"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
            if sign is not None and qualities:
                assert np.sign(expected) == sign


def test_same_seed_same_users_and_the_corpus_is_shared(options):
    slates = distinct_slates(np.random.default_rng(2), 4)
    runs = []
    for seed in (7, 7, 8):
        env = InterestEvolutionVectorEnv(options, 4, AutoresetMode.DISABLED)
        env.reset(seed=seed)
        runs.append([env.step(slates)[1] for _ in range(options.horizon)])
        np.testing.assert_array_equal(env.doc_features, InterestEvolutionVectorEnv(options, 2).doc_features)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_a_seeded_reset_draws_that_seeds_users_in_an_env_already_run(options):
    # Evaluation resets one env with each batch's seed; TensorFlow's traced random ops keep the seeds
    # of their first trace, so without a fresh trace every batch repeated the first one's users.
    slates = distinct_slates(np.random.default_rng(3), 4)

    def episode(env, seed):
        env.reset(seed=seed)
        return [env.step(slates)[1] for _ in range(options.horizon)]

    reused = InterestEvolutionVectorEnv(options, 4, AutoresetMode.DISABLED)
    in_turn = {seed: episode(reused, seed) for seed in (7, 8, 9, 7)}
    for seed in (7, 8, 9):
        fresh = episode(InterestEvolutionVectorEnv(options, 4, AutoresetMode.DISABLED), seed)
        np.testing.assert_array_equal(in_turn[seed], fresh)
    assert not np.array_equal(in_turn[7], in_turn[8]) and not np.array_equal(in_turn[8], in_turn[9])


def test_evaluation_batches_hold_different_users():
    runtime = prepare_task(load_task(TASKS / "recsim-interest.yaml", [*SMALL_MODEL, "domain_options.horizon=3"]))

    def same_slate(observations: np.ndarray) -> np.ndarray:  # the users alone decide the returns
        return np.tile([0, 1], (len(observations), 1))

    both = [e["return"] for e in evaluate_policy(runtime, same_slate, 8, seed=0, num_envs=4).episodes]
    later = [e["return"] for e in evaluate_policy(runtime, same_slate, 4, seed=4, num_envs=4).episodes]
    assert both[:4] != both[4:]
    assert both[4:] == later


def test_each_batch_after_an_autoreset_holds_new_users_whatever_else_seeds_tensorflow(options):
    # A validation round between two training batches seeds TensorFlow, which restarts every traced
    # random stream: training used to meet its first batch's users again after each round.
    slates = distinct_slates(np.random.default_rng(4), 4)

    def batch(env):
        return [env.step(slates)[1] for _ in range(options.horizon)]

    training = InterestEvolutionVectorEnv(options, 4, AutoresetMode.SAME_STEP)
    training.reset(seed=7)
    first = batch(training)
    validation = InterestEvolutionVectorEnv(options, 4, AutoresetMode.DISABLED)
    validation.reset(seed=7)
    validation.step(slates)
    second = batch(training)
    assert not np.array_equal(first, second)
    undisturbed = InterestEvolutionVectorEnv(options, 4, AutoresetMode.SAME_STEP)
    undisturbed.reset(seed=7)
    np.testing.assert_array_equal(batch(undisturbed), first)
    np.testing.assert_array_equal(batch(undisturbed), second)
    assert all(batch_seed(seed, b) >= AUTORESET_SEEDS_START for seed in (0, 7, 2**40) for b in range(1, 50))


def test_the_horizon_truncates_every_user_and_autoreset_starts_fresh_ones(options):
    env = InterestEvolutionVectorEnv(options, 3, AutoresetMode.SAME_STEP)
    layout = TokenLayout.of(options)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(1, options.horizon + 1):
        observations, _, terminated, truncated, info = env.step(distinct_slates(rng, 3))
        assert not terminated.any() and truncated.all() == (step == options.horizon)
    assert "final_obs" in info and "clicked" in info["final_info"]
    assert (observations[:, layout.history_rows, layout.PRESENT] == 0).all()


def test_bad_slates_are_refused_with_a_clear_error(options):
    env = InterestEvolutionVectorEnv(options, 2, AutoresetMode.DISABLED)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="must not repeat"):
        env.step(np.array([[3, 3], [1, 2]]))
    with pytest.raises(ValueError, match=r"in \[0, 100\)"):
        env.step(np.array([[3, 100], [1, 2]]))
    with pytest.raises(ValueError, match="reset_mask must be all True"):
        env.reset(seed=0, options={"reset_mask": np.array([True, False])})


def test_observed_affinity_recommends_the_documents_nearest_the_consumed_ones(options):
    env = InterestEvolutionVectorEnv(options, 1, AutoresetMode.DISABLED)
    layout = TokenLayout.of(options)
    observation, _ = env.reset(seed=0)
    observation = observation.copy()
    target = 17
    row = observation[0, layout.num_docs + layout.history_length - 1]
    row[layout.PRESENT], row[layout.doc_index], row[layout.consumed_time] = 1.0, target, 1.5
    row[layout.FEATURES : layout.quality] = env.doc_features[target]
    slate = ObservedAffinityPolicy(layout, 2, seed=0)(observation)[0]
    distances = np.linalg.norm(env.doc_features - env.doc_features[target], axis=1)
    assert slate[0] == target and set(slate) == set(np.argsort(distances)[:2])


@pytest.mark.parametrize(("num_docs", "slate_size"), [(4, 1), (6, 2), (7, 3)])
def test_the_fixed_slate_is_the_best_slate_when_its_shortlist_holds_the_corpus(num_docs, slate_size):
    options = EcosystemOptions(num_docs=num_docs, slate_size=slate_size, history_length=3, horizon=4)
    policy = FixedSlatePolicy(options, seed=5, users=4)
    # brute force: every slate of the corpus, for the same users, in an env of its own
    env = InterestEvolutionVectorEnv(options, 4, AutoresetMode.DISABLED)
    earned = {}
    for slate in itertools.combinations(range(num_docs), slate_size):
        env.reset(seed=FIXED_SLATE_SEARCH_SEED + 5)
        earned[slate] = sum(env.step(np.tile(slate, (4, 1)))[1].mean() for _ in range(options.horizon))
    assert earned[tuple(policy.slate)] == pytest.approx(max(earned.values()))
    assert len(policy.earned) == len(earned)
    slates = policy(np.zeros((3, 1)))
    assert slates.shape == (3, slate_size) and (slates == policy.slate).all()


def test_the_fixed_slate_of_a_larger_corpus_no_single_swap_improves():
    options = EcosystemOptions(num_docs=20, history_length=3, horizon=4)
    policy = FixedSlatePolicy(options, seed=0, users=4, shortlist_extra=1)
    best = tuple(policy.slate.tolist())
    assert len(set(best)) == options.slate_size and policy.earned[best] == max(policy.earned.values())
    for slot, d in itertools.product(range(options.slate_size), range(options.num_docs)):
        if d not in best:  # the search ends where every single swap was tried and none earned more
            assert policy.earned[tuple(sorted((*best[:slot], d, *best[slot + 1 :])))] <= policy.earned[best]


def test_random_slates_hold_distinct_documents():
    slates = RandomPolicy(100, seed=0, slate_size=2)(np.zeros((500, 1)))
    assert slates.shape == (500, 2) and (slates[:, 0] != slates[:, 1]).all()
    assert set(np.unique(slates)) == set(range(100))


def test_recsim_ngs_collaborative_filtering_trains_with_its_own_loop_and_recommends(options):
    policy = CollabFilteringPolicy(options, user_steps=200, num_users=8, learning_rate=1e-3, seed=0)
    assert policy.recommender.user_steps >= 200
    env = InterestEvolutionVectorEnv(options, 11, AutoresetMode.DISABLED)  # not a multiple of its 8 users
    observations, _ = env.reset(seed=0)
    slates = policy(observations)
    assert slates.shape == (11, 2) and (slates[:, 0] != slates[:, 1]).all()
    env.step(slates)


def test_recsim_ngs_collaborative_filtering_of_one_seed_recommends_the_same_slates(options):
    # tf-keras seeds its initializers from Python's global random, which each process starts anew
    env = InterestEvolutionVectorEnv(options, 8, AutoresetMode.DISABLED)
    observations, _ = env.reset(seed=0)
    first, second = (
        CollabFilteringPolicy(options, user_steps=200, num_users=8, learning_rate=1e-3, seed=3)(observations)
        for _ in range(2)
    )
    np.testing.assert_array_equal(first, second)


def test_short_real_training_run_scores_documents_per_token(tmp_path):
    task = load_task(
        TASKS / "recsim-interest.yaml",
        SMALL_MODEL
        + [
            "trainer.max_env_steps=1200",
            "learner.learning_starts=400",
            "replay.batch_size=16",
            "trainer.progress_bar=false",
            "env.num_envs=8",
            "domain_options.horizon=20",
            "eval.episodes=8",
        ],
    )
    result = train(task, runs_dir=tmp_path)
    assert result.env_steps >= 1200 and result.episodes >= 8 * 3
    from attnq.agent import load_agent

    agent = load_agent(str(result.run_dir))
    assert agent.runtime.slate_size == 2 and agent.runtime.num_actions == 100
    evaluation = evaluate_policy(agent.runtime, agent, episodes=8, seed=0)
    means = evaluation.means()
    assert set(means) == {"return", "length", "click_rate", "consumed_quality", "nutritious_click_rate"}
    assert means["length"] == 20 and 0.0 <= means["click_rate"] <= 1.0
    # per_token head: one Q-value per candidate document, and the slate is the two best
    observation = agent.runtime.make_env().reset(seed=0)[0]
    q_values = agent.q_network(torch.as_tensor(observation[None])).q_values_BA[0]
    assert q_values.shape == (100,)
    np.testing.assert_array_equal(agent(observation[None])[0], torch.topk(q_values, 2).indices.numpy())


def test_recsim_task_validates_its_domain_options():
    from attnq.errors import TaskFileError

    task = load_task(TASKS / "recsim-interest.yaml", ["domain_options.horizon=0"])
    with pytest.raises(TaskFileError, match="horizon"):
        prepare_task(task)


def test_advantage_learning_is_refused_for_slates():
    from attnq.errors import TaskFileError

    task = load_task(TASKS / "recsim-interest.yaml", ["learner.advantage_learning=0.9"])
    with pytest.raises(
        TaskFileError, match=r"learner\.advantage_learning.*slates.*fix: set learner\.advantage_learning=0"
    ):
        prepare_task(task)


def test_without_document_identity_documents_are_known_only_by_their_features(options):
    from attnq_recsim.encoder import SlateEncoder

    layout = TokenLayout.of(options)
    env = InterestEvolutionVectorEnv(options, 2, AutoresetMode.DISABLED)
    observations = torch.as_tensor(env.reset(seed=0)[0])
    anonymous = SlateEncoder(layout, env.doc_is_trashy, 16, document_identity=False)
    tokens = anonymous(observations)
    assert anonymous.document is None and tokens.embeddings_BTD.shape == (2, layout.num_rows, 16)
    # two documents with the same features get the same token
    observations[:, 1, layout.FEATURES : layout.quality] = observations[:, 0, layout.FEATURES : layout.quality]
    same = anonymous(observations).embeddings_BTD
    assert torch.allclose(same[:, 0], same[:, 1])
    assert not torch.allclose(*SlateEncoder(layout, env.doc_is_trashy, 16)(observations).embeddings_BTD[0, :2])


@pytest.mark.parametrize("attend_to", ["all", "history"])
def test_with_history_attention_documents_are_scored_against_the_history_not_each_other(attend_to):
    overrides = ["domain_options.horizon=5", "env.num_envs=2", f"domain_options.attend_to={attend_to}"]
    runtime = prepare_task(load_task(TASKS / "recsim-interest.yaml", SMALL_MODEL + overrides))
    network = runtime.build_q_network().eval()
    env = runtime.make_env()
    observation = env.reset(seed=0)[0]
    for _ in range(3):  # some history to attend to
        observation = env.step(env.action_space.sample())[0]
    env.close()
    layout = network.encoder.layout
    observations = torch.as_tensor(np.stack([observation, observation]))
    observations[1, 1, layout.FEATURES : layout.quality] += 0.5  # document 1 changes in row 1
    output = network(observations, return_attention=True)
    document_0 = output.q_values_BA[:, 0]
    if attend_to == "all":
        assert not torch.allclose(document_0[0], document_0[1])
        return
    assert torch.allclose(document_0[0], document_0[1], atol=1e-6)
    # a document's attention row: the [CLS] token and the history rows present, nothing else
    present_history = torch.nonzero(observations[0, layout.history_rows, layout.PRESENT] > 0.5).flatten()
    assert len(present_history) > 0
    attended = torch.nonzero(output.attention[-1][0, :, 1].mean(dim=0) > 0).flatten()
    assert attended.tolist() == [0, *(1 + layout.num_docs + present_history).tolist()]
