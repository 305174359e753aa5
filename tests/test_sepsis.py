"""The ICU-Sepsis domain on the real icu-sepsis package: tokens, action masking, exact values, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from attnq.checkpoints import load_checkpoint_file
from attnq.config import load_task
from attnq.evaluation import evaluate_policy
from attnq.runtime import prepare_task
from attnq.training.dqn_module import DQNModule
from attnq.training.run import train
from attnq_sepsis.environment import ADMISSIBLE_SLICE, OBSERVATION_SIZE, observations_for_states
from attnq_sepsis.features import FEATURE_NAMES
from attnq_sepsis.value_iteration import SepsisMDP
from conftest import SMALL_MODEL, TASKS


@pytest.fixture(scope="module")
def runtime():
    return prepare_task(load_task(TASKS / "sepsis.yaml", SMALL_MODEL))


@pytest.fixture(scope="module")
def mdp(runtime):
    return SepsisMDP.from_env(runtime.context.probe_env)


def _observations_of_states(runtime, states: np.ndarray) -> np.ndarray:
    return observations_for_states(runtime.context.probe_env, states)


def test_feature_names_cover_the_state_vector(runtime):
    assert len(FEATURE_NAMES) == 47 == runtime.context.probe_env.unwrapped.state_cluster_centers.shape[1]
    assert len(set(FEATURE_NAMES)) == 47
    assert {"Arterial_lactate", "SOFA", "MeanBP"} <= set(FEATURE_NAMES)


def test_wrapper_observation_matches_the_env_info(runtime):
    env = runtime.make_env()
    observation, info = env.reset(seed=3)
    assert observation.shape == (OBSERVATION_SIZE,)
    assert np.allclose(observation[:47], info["state_vector"])
    assert np.flatnonzero(observation[ADMISSIBLE_SLICE]).tolist() == sorted(info["admissible_actions"])
    _, _, _, _, step_info = env.step(7)
    assert (step_info["fluid_level"], step_info["vasopressor_level"]) == (1, 2)
    env.close()


def test_encoder_makes_one_labelled_token_per_feature(runtime):
    network = runtime.build_q_network()
    observations = _observations_of_states(runtime, np.array([0, 100, 500]))
    tokens = network.encoder(torch.as_tensor(observations))
    assert tokens.embeddings_BTD.shape == (3, 47, 32) and tokens.mask_BT.all()
    sofa = FEATURE_NAMES.index("SOFA")
    changed = observations.copy()
    changed[:, sofa] += 1.0
    moved_BT = (network.encoder(torch.as_tensor(changed)).embeddings_BTD - tokens.embeddings_BTD).abs().sum(-1)
    assert (moved_BT[:, sofa] > 0).all() and torch.count_nonzero(moved_BT) == 3  # only SOFA's own token moves
    labels = network.encoder.token_labels(observations[1])
    assert len(labels) == 47 and labels[FEATURE_NAMES.index("SOFA")].startswith("SOFA ")
    output = network(torch.as_tensor(observations), return_attention=True)
    assert output.cls_tokens == 1 and output.attention[0].shape == (3, 2, 48, 48)


def test_several_queries_show_the_mean_of_their_attention_rows_under_cls_labels():
    """With model.queries: 3 the picture shows what the head reads: the three [CLS] rows averaged
    over heads and queries, over the three [CLS] tokens and the 47 features."""
    from attnq.agent import TrainedAgent
    from attnq.explain import record_episode

    runtime = prepare_task(load_task(TASKS / "sepsis.yaml", [*SMALL_MODEL, "model.queries=3"]))
    network = runtime.build_q_network().eval()
    agent = TrainedAgent(runtime.task, runtime, network, Path("run"), Path("run/last.ckpt"), 0, float("nan"))
    observation = _observations_of_states(runtime, np.array([100]))[0]
    weights, cls_tokens = agent.query_attention(observation)
    with torch.no_grad():
        output = network(torch.as_tensor(observation[None]), return_attention=True)
    assert cls_tokens == output.cls_tokens == 3 and output.attention[-1].shape == (1, 2, 50, 50)
    assert np.allclose(weights, output.attention[-1][0, :, :3].mean(dim=(0, 1)).numpy(), atol=1e-6)
    assert weights.shape == (50,) and weights.sum() == pytest.approx(1.0, abs=1e-5)
    steps, _ = record_episode(agent, seed=0, max_steps=2)
    assert steps[0].labels[:3] == ["[CLS1]", "[CLS2]", "[CLS3]"] and steps[0].labels[3].startswith(FEATURE_NAMES[0])
    assert len(steps[0].labels) == len(steps[0].weights) == 50


def test_agent_and_random_baseline_never_pick_an_inadmissible_action_in_1000_random_states(runtime, mdp):
    module = DQNModule(runtime.task.to_dict(), runtime=runtime)
    states = np.random.default_rng(0).integers(0, 713, size=1000)
    observations = _observations_of_states(runtime, states)
    with torch.no_grad():  # bias the untrained network towards inadmissible actions: masking must win
        module.q_network.head.advantage[2].bias.copy_(torch.linspace(10.0, -10.0, 25))
    baseline = runtime.baseline("random", seed=0)(observations)
    for actions in (module.greedy_actions(observations), module.random_actions(observations), baseline):
        assert mdp.admissible_SA[states, actions].all()
    assert (~mdp.admissible_SA[states]).any(), "the sample should contain states with inadmissible actions"


def test_value_iteration_matches_the_packages_reported_values(mdp, runtime):
    optimum, _ = mdp.optimal()
    assert optimum == pytest.approx(0.88, abs=0.01)  # package README: optimal 0.88
    admissible_optimum, _ = mdp.optimal(admissible_only=True)
    assert admissible_optimum == pytest.approx(optimum, abs=1e-6)
    uniform = np.full(mdp.admissible_SA.shape, 1 / 25)
    assert mdp.policy_value(uniform) == pytest.approx(0.78, abs=0.01)  # random 0.78
    clinicians = runtime.context.probe_env.unwrapped.expert_policy
    assert mdp.policy_value(clinicians) == pytest.approx(0.78, abs=0.01)  # clinicians 0.78


def test_the_optimal_policys_own_q_values_are_q_star_and_a_worse_policys_are_lower(mdp):
    q_star_SA = mdp.optimal_q_values(admissible_only=True)
    optimal_policy_SA = mdp.deterministic_policy(q_star_SA.argmax(axis=1))
    scored_SA = mdp.admissible_SA & ~mdp.terminal_S[:, None]
    q_pi_SA = mdp.policy_q_values(optimal_policy_SA)
    assert np.abs(q_pi_SA - q_star_SA)[scored_SA].max() < 1e-6
    uniform_q_SA = mdp.policy_q_values(np.full(mdp.admissible_SA.shape, 1 / 25))
    assert (uniform_q_SA[scored_SA] <= q_star_SA[scored_SA] + 1e-9).all()
    assert (uniform_q_SA[scored_SA] < q_star_SA[scored_SA] - 1e-3).mean() > 0.5


def test_state_visits_split_a_policys_value_and_its_gap_to_the_optimum(mdp):
    q_star_SA = mdp.optimal_q_values(admissible_only=True)
    optimum, _ = mdp.optimal(admissible_only=True)
    first_admissible_S = mdp.admissible_SA.argmax(axis=1)  # a poor fixed policy
    policy_SA = mdp.deterministic_policy(first_admissible_S)
    visits_S = mdp.state_visits(policy_SA)
    value = mdp.policy_value(policy_SA)
    assert optimum - value > 0.05
    # value = sum of expected rewards over the visits; gap = sum of per-state losses over the visits
    assert (visits_S * (policy_SA * mdp.expected_reward_SA).sum(axis=1)).sum() == pytest.approx(value, abs=1e-8)
    live_S = np.flatnonzero(~mdp.terminal_S)
    loss_S = q_star_SA[live_S].max(axis=1) - q_star_SA[live_S, first_admissible_S[live_S]]
    assert (visits_S[live_S] * loss_S).sum() == pytest.approx(optimum - value, abs=1e-8)


def test_optimal_baseline_rollouts_agree_with_its_exact_value(runtime, mdp):
    result = evaluate_policy(runtime, runtime.baseline("optimal", 0), episodes=2000, seed=0)
    optimum, _ = mdp.optimal()
    assert result.means()["return"] == pytest.approx(optimum, abs=0.025)  # ~3 standard errors
    assert runtime.domain.exact_return(runtime.context, runtime.baseline("optimal", 0)) == pytest.approx(
        optimum, abs=1e-6
    )
    assert result.means()["survived"] == result.means()["return"]
    assert 0.0 <= result.means()["mean_fluid_level"] <= 4.0


def test_a_run_shorter_than_the_warm_up_stops_at_its_own_budget(tmp_path):
    task = load_task(TASKS / "sepsis.yaml", SMALL_MODEL + ["trainer.max_env_steps=400", "trainer.progress_bar=false"])
    assert task.learner.learning_starts > 400
    result = train(task, runs_dir=tmp_path)
    # the warm-up stops at the budget, then one update with its vector step
    assert 400 <= result.env_steps <= 400 + 2 * task.env.num_envs


def test_short_real_training_run(tmp_path):
    task = load_task(
        TASKS / "sepsis.yaml",
        SMALL_MODEL
        + [
            "trainer.max_env_steps=3000",
            "learner.learning_starts=1000",
            "replay.batch_size=32",
            "trainer.progress_bar=false",
            "env.num_envs=8",
            "learner.lr=0.0003",
            "learner.lr_end=0.00003",
            # the task's default, stated so this test keeps advantage learning's path should the default
            # change (highway's training tests take it by default too; recsim's, translation's and the
            # example plugin's take the plain target)
            "learner.advantage_learning=0.9",
        ],
    )
    result = train(task, runs_dir=tmp_path)
    assert result.env_steps >= 3000 and result.episodes > 100
    # the learning rate was annealed linearly over the 250 updates and the schedule is checkpointed
    checkpoint = load_checkpoint_file(result.checkpoint)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.00003, rel=0.1)
    assert checkpoint["lr_schedulers"][0]["last_epoch"] == checkpoint["global_step"]
    from attnq.agent import load_agent

    agent = load_agent(str(result.run_dir))
    evaluation = evaluate_policy(agent.runtime, agent, episodes=50, seed=0)
    means = evaluation.means()
    assert set(means) == {"return", "length", "survived", "mean_fluid_level", "mean_vasopressor_level"}
    assert 0.0 <= means["survived"] <= 1.0 and means["length"] >= 1


def test_compiled_td_loss_matches_the_eager_one_and_trains(tmp_path):
    task = load_task(
        TASKS / "sepsis.yaml",
        SMALL_MODEL
        + [
            "trainer.compile=true",
            "trainer.max_env_steps=1400",
            "learner.learning_starts=1000",
            "env.num_envs=8",
            "replay.batch_size=32",
            "trainer.progress_bar=false",
        ],
    )
    module = DQNModule(task.model_dump())
    module.on_fit_start()  # the random warm-up fills the replay
    try:
        batch = module.sample_batch()
    finally:
        module.on_fit_end()
    parameters = list(module.q_network.parameters())
    results = []
    for loss_function in (module.td_loss, module.compiled_td_loss):
        result = loss_function(batch)
        gradients = torch.autograd.grad(result.loss, parameters)
        results.append((result, gradients))
    (eager, eager_gradients), (compiled, compiled_gradients) = results
    assert compiled.loss.item() == pytest.approx(eager.loss.item(), rel=1e-5, abs=1e-7)
    assert torch.allclose(compiled.td_target, eager.td_target, atol=1e-6)
    assert all(torch.allclose(c, e, atol=1e-6) for c, e in zip(compiled_gradients, eager_gradients))
    # a real run with it: ~50 updates, and the checkpoint holds the plain networks' weights
    result = train(task, runs_dir=tmp_path)
    state = load_checkpoint_file(result.checkpoint)["state_dict"]
    assert result.env_steps >= 1400 and state.keys() == module.state_dict().keys()


def test_compile_without_a_cpp_compiler_is_a_clear_error_before_any_run_folder(tmp_path, monkeypatch):
    from attnq.errors import TaskFileError

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CXX", raising=False)
    task = load_task(TASKS / "sepsis.yaml", SMALL_MODEL + ["trainer.compile=true", "trainer.accelerator=cpu"])
    with pytest.raises(TaskFileError, match="trainer.compile.*C\\+\\+ compiler"):
        train(task, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_importing_icu_sepsis_prints_no_gym_banner():
    """icu-sepsis imports the legacy gym package, which prints a deprecation banner to stderr."""
    import subprocess
    import sys

    code = "from attnq_sepsis.environment import import_icu_sepsis; import_icu_sepsis(); import gym"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0 and "Gym has been unmaintained" not in completed.stderr, completed.stderr
