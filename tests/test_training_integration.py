"""Real training on highway-env through the real Lightning Trainer: checkpoint, kill, resume,
evaluate, explain, determinism, and the errors a user meets with runs and checkpoints."""

from __future__ import annotations

import csv
import itertools
import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from attnq.agent import load_agent
from attnq.checkpoints import load_checkpoint_file
from attnq.config import load_task
from attnq.errors import CheckpointError
from attnq.evaluation import evaluate_policy, validation_score
from attnq.explain import explain
from attnq.training.dqn_module import DQNModule
from attnq.training.run import train
from conftest import TASKS, TINY_TRAINING, attnq_command


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    task = load_task(TASKS / "highway-fast.yaml", TINY_TRAINING)
    return task, train(task, runs_dir=tmp_path_factory.mktemp("runs"))


def test_training_writes_a_run_folder_with_config_checkpoint_and_metrics(trained_run):
    task, result = trained_run
    assert result.env_steps >= task.trainer.max_env_steps and result.episodes > 0
    assert (result.run_dir / "config.yaml").is_file()
    checkpoint = load_checkpoint_file(result.checkpoint)  # weights_only load must succeed
    assert checkpoint["attnq"]["env_steps"] == result.env_steps
    assert len(checkpoint["attnq"]["replay"]["actions"]) == min(result.env_steps, task.replay.capacity)
    with open(result.run_dir / "logs" / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert any(row.get("train/loss") for row in rows) and any(row.get("rollout/return") for row in rows)
    assert not list(result.run_dir.rglob("*.tmp")), "temporary files left behind"


def test_evaluation_is_deterministic_on_fixed_seeds_and_independent_of_workers(trained_run):
    _, result = trained_run
    agent = load_agent(str(result.run_dir))
    one_worker = evaluate_policy(agent.runtime, agent, episodes=3, seed=123, num_envs=1)
    two_workers = evaluate_policy(agent.runtime, agent, episodes=3, seed=123, num_envs=2)
    assert one_worker.seeds == [123, 124, 125]
    assert one_worker.episodes == two_workers.episodes
    assert {"return", "crashed", "mean_speed", "length"} <= set(one_worker.means())
    assert all(e["crashed"] in (0.0, 1.0) for e in one_worker.episodes)


def test_baselines_are_evaluated_on_the_same_seeds(trained_run):
    _, result = trained_run
    agent = load_agent(str(result.run_dir))
    runtime = agent.runtime
    assert runtime.baseline_names() == ["random", "idle", "gap_keeper"]
    idle = evaluate_policy(runtime, runtime.baseline("idle", 0), episodes=2, seed=7)
    again = evaluate_policy(runtime, runtime.baseline("idle", 0), episodes=2, seed=7)
    assert idle.episodes == again.episodes


def test_explain_writes_a_labelled_attention_picture(trained_run, tmp_path):
    _, result = trained_run
    agent = load_agent(str(result.checkpoint))
    png, js, summary = explain(agent, tmp_path, seed=11)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(js.read_text())
    assert data["episode"]["length"] == len(data["steps"]) == summary["length"]
    first = data["steps"][0]
    assert first["labels"][0].startswith("ego") and len(first["labels"]) == len(first["weights"]) == 8
    assert sum(first["weights"]) == pytest.approx(1.0, abs=1e-4)


def test_same_task_and_seed_give_identical_results(tmp_path):
    task = load_task(
        TASKS / "highway-fast.yaml", TINY_TRAINING + ["trainer.max_env_steps=120", "learner.learning_starts=40"]
    )
    first = train(task, runs_dir=tmp_path / "a")
    second = train(task, runs_dir=tmp_path / "b")
    weights_a = load_checkpoint_file(first.checkpoint)["state_dict"]
    weights_b = load_checkpoint_file(second.checkpoint)["state_dict"]
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    other_seed = load_task(
        TASKS / "highway-fast.yaml",
        TINY_TRAINING + ["trainer.max_env_steps=120", "learner.learning_starts=40", "seed=5"],
    )
    third = load_checkpoint_file(train(other_seed, runs_dir=tmp_path / "c").checkpoint)["state_dict"]
    assert not all(torch.equal(weights_a[k], third[k]) for k in weights_a)


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    overrides = [o for o in TINY_TRAINING if not o.startswith("trainer.max_env_steps")] + [
        "trainer.max_env_steps=100000",
        "trainer.checkpoint_every_env_steps=100",
    ]
    process = subprocess.Popen(
        attnq_command("train", "highway-fast", "--runs-dir", str(runs), "--set", *overrides),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 240
    checkpoints: list[Path] = []
    while time.time() < deadline and not checkpoints:
        time.sleep(1.0)
        checkpoints = list(runs.glob("highway-fast/*/checkpoints/last.ckpt"))
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert checkpoints, "no checkpoint appeared before the deadline"
    run_dir = checkpoints[0].parent.parent
    saved_steps = load_checkpoint_file(checkpoints[0])["attnq"]["env_steps"]
    target = saved_steps + 60
    resumed = subprocess.run(
        attnq_command(
            "train",
            "highway-fast",
            "--runs-dir",
            str(runs),
            "--resume",
            str(run_dir),
            "--set",
            *overrides[:-2],
            f"trainer.max_env_steps={target}",
            "trainer.checkpoint_every_env_steps=100",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert saved_steps < final["attnq"]["env_steps"] <= target + 2
    assert final["global_step"] > 0 and final["attnq"]["episodes"] > 0


def test_resume_with_another_task_is_refused(trained_run):
    _, result = trained_run
    other = load_task(TASKS / "intersection.yaml", TINY_TRAINING)
    with pytest.raises(CheckpointError, match="trained with name = 'highway-fast'"):
        train(other, resume=result.run_dir)
    different_model = load_task(TASKS / "highway-fast.yaml", TINY_TRAINING + ["model.layers=2"])
    with pytest.raises(CheckpointError, match="trained with model.layers = 1, but the task asks for 2"):
        train(different_model, resume=result.run_dir)
    # the run averages its weights (the task's default); the checkpoint holds that second network
    without_averaging = load_task(TASKS / "highway-fast.yaml", TINY_TRAINING + ["learner.weight_average_decay=null"])
    with pytest.raises(CheckpointError, match="weight_average_decay = 0.998, but the task asks for None"):
        train(without_averaging, resume=result.run_dir)


def test_corrupt_and_foreign_checkpoints_get_clear_errors(tmp_path):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable attnq checkpoint"):
        load_agent(str(corrupt))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not an attnq checkpoint"):
        load_agent(str(foreign))
    with pytest.raises(CheckpointError, match="has neither checkpoints/last.ckpt nor policy.ckpt"):
        load_agent(str(tmp_path))


def test_cli_evaluate_prints_a_table_and_json(trained_run):
    _, result = trained_run
    completed = subprocess.run(
        attnq_command("evaluate", str(result.run_dir), "--episodes", "2"), capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert "2 episodes" in lines[0] and any(line.strip().startswith("crashed") for line in lines)
    payload = json.loads(lines[-1])
    assert payload["episodes"] == 2 and set(payload["mean"]) >= {"return", "crashed", "mean_speed", "length"}
    explained = subprocess.run(
        attnq_command("explain", str(result.run_dir)), capture_output=True, text=True, timeout=300
    )
    assert explained.returncode == 0 and (result.run_dir / "explain" / "attention.png").is_file()


def test_mlp_ablation_has_nothing_to_explain(tmp_path):
    task = load_task(
        TASKS / "highway-fast.yaml",
        TINY_TRAINING + ["model.torso=mlp", "trainer.max_env_steps=80", "learner.learning_starts=40"],
    )
    result = train(task, runs_dir=tmp_path)
    agent = load_agent(str(result.run_dir))
    assert np.asarray(agent(np.zeros((1, 8, 5), dtype=np.float32))).shape == (1,)
    with pytest.raises(CheckpointError, match="no attention to explain"):
        explain(agent, tmp_path / "x")


def test_keep_best_saves_the_best_validation_checkpoint(tmp_path):
    task = load_task(
        TASKS / "highway-fast.yaml",
        TINY_TRAINING + ["eval.every_env_steps=80", "eval.episodes_during_training=1", "eval.keep_best=true"],
    )
    assert task.eval.seed_during_training != task.eval.seed  # selection never sees the final episodes
    heard: list[tuple[float, float]] = []  # what a sweep's trial hears: (this round's score, the run's best)

    def listen(steps: int, means: dict[str, float], best: float) -> None:
        heard.append((validation_score(means), best))

    result = train(task, runs_dir=tmp_path, on_evaluation=listen)
    assert 0 < result.evaluation_seconds < result.wall_seconds  # left out of the training throughput
    best = load_checkpoint_file(result.run_dir / "checkpoints" / "best.ckpt")
    last = load_checkpoint_file(result.run_dir / "checkpoints" / "last.ckpt")
    assert np.isfinite(best["attnq"]["best_eval_return"])
    assert best["attnq"]["env_steps"] <= last["attnq"]["env_steps"]
    assert last["attnq"]["best_eval_return"] == best["attnq"]["best_eval_return"]  # a resumed run keeps it
    metrics = list(csv.DictReader(open(next(result.run_dir.glob("logs/metrics.csv")))))
    validation_rows = [row for row in metrics if row.get("eval/return")]
    validation_returns = [float(row["eval/return"]) for row in validation_rows]
    evaluated_at = [float(row["train/env_steps"]) for row in validation_rows]
    assert len(evaluated_at) >= 2 and all(b - a >= 80 for a, b in zip(evaluated_at, evaluated_at[1:]))  # one row each
    assert best["attnq"]["best_eval_return"] == pytest.approx(max(validation_returns), rel=1e-5)
    scores, bests = zip(*heard)
    assert bests == tuple(itertools.accumulate(scores, max))
    # resumed with a larger budget, the best recorded before the stop still counts (here one no round reaches)
    stopped = result.run_dir / "checkpoints" / "last.ckpt"
    torch.save(
        load_checkpoint_file(stopped) | {"attnq": last["attnq"] | {"best_eval_return": bests[-1] + 1000.0}}, stopped
    )
    heard.clear()
    train(
        load_task(result.run_dir / "config.yaml", ["trainer.max_env_steps=400"]),
        resume=result.run_dir,
        on_evaluation=listen,
    )
    scores, resumed_bests = zip(*heard)
    assert resumed_bests == (bests[-1] + 1000.0,) * len(scores)
    best = load_checkpoint_file(result.run_dir / "checkpoints" / "best.ckpt")
    assert load_agent(str(result.run_dir / "checkpoints" / "best.ckpt")).env_steps == best["attnq"]["env_steps"]
    # the run folder stands for the checkpoint its report evaluates: `attnq evaluate RUN` shows the same figures
    assert load_agent(str(result.run_dir)).checkpoint == result.run_dir / "checkpoints" / "best.ckpt"
    config = result.run_dir / "config.yaml"
    config.write_text(config.read_text().replace("keep_best: true", "keep_best: false"))
    assert load_agent(str(result.run_dir)).checkpoint == result.run_dir / "checkpoints" / "last.ckpt"
    config.write_text("eval: [keep_best\n")
    with pytest.raises(CheckpointError, match="config.yaml is not valid YAML"):
        load_agent(str(result.run_dir))
    from attnq.experiments.plan import check_reusable

    with pytest.raises(CheckpointError, match="config.yaml is not valid YAML"):  # a report reusing it says so too
        check_reusable(result.run_dir, task)


def test_weight_averaging_exports_the_averaged_network_and_leaves_learning_unchanged(trained_run, tmp_path):
    task, averaged = trained_run
    assert task.learner.weight_average_decay  # the highway task averages its weights
    plain = train(
        load_task(TASKS / "highway-fast.yaml", TINY_TRAINING + ["learner.weight_average_decay=null"]), runs_dir=tmp_path
    )
    plain_weights = load_checkpoint_file(plain.checkpoint)["state_dict"]
    assert not any(k.startswith("averaged_network.") for k in plain_weights)
    weights = load_checkpoint_file(averaged.checkpoint)["state_dict"]
    online = {k.removeprefix("q_network."): v for k, v in weights.items() if k.startswith("q_network.")}
    average = {k.removeprefix("averaged_network."): v for k, v in weights.items() if k.startswith("averaged_network.")}
    assert online.keys() == average.keys() and online
    # the online network acts and learns exactly as without averaging (same seed)
    assert all(torch.equal(v, plain_weights[f"q_network.{k}"]) for k, v in online.items())
    assert not all(torch.equal(average[k], online[k]) for k in online)
    agent = load_agent(str(averaged.run_dir))
    assert all(torch.equal(v.cpu(), average[k]) for k, v in agent.q_network.state_dict().items())


def test_weight_decay_shrinks_weight_matrices_and_embeddings_but_not_biases_or_norms():
    lr, decay = 0.01, 0.1
    task = load_task(TASKS / "highway-fast.yaml", TINY_TRAINING + [f"learner.lr={lr}", f"learner.weight_decay={decay}"])
    module = DQNModule(task.to_dict())
    optimizer = module.make_optimizer()
    parameters = dict(module.q_network.named_parameters())
    before = {name: p.detach().clone() for name, p in parameters.items()}
    for p in parameters.values():
        p.grad = torch.zeros_like(p)  # no gradient: all that moves a weight is the decay
    optimizer.step()
    matrices = [name for name, p in parameters.items() if p.ndim >= 2]
    assert matrices and len(matrices) < len(parameters)
    for name, p in parameters.items():
        expected = before[name] * (1 - lr * decay) if name in matrices else before[name]
        assert torch.allclose(p.detach(), expected, rtol=0, atol=1e-7), name
    without = DQNModule(load_task(TASKS / "highway-fast.yaml", TINY_TRAINING).to_dict())
    assert type(without.make_optimizer()) is torch.optim.Adam  # runs made before the option stay bit for bit


def test_keep_best_without_evaluations_is_a_clear_task_error():
    from attnq.errors import TaskFileError

    with pytest.raises(TaskFileError, match="every_env_steps"):
        load_task(TASKS / "highway-fast.yaml", ["eval.keep_best=true", "eval.every_env_steps=0"])


def test_validation_and_variant_env_kwargs_reach_their_evaluations(tmp_path):
    """The evaluations during training use ``eval.validation_env_kwargs`` (here: CartPole cut at 5 steps,
    where an untrained pole falls after 8 or more), and each ``eval.variants`` entry evaluates again."""
    from attnq.catalog import find_task
    from attnq.evaluation import policy_metrics
    from attnq.registry import load_plugins

    host = load_plugins()
    overrides = [*TINY_TRAINING, "env.num_envs=1", "eval.every_env_steps=100", "eval.episodes_during_training=3"]
    overrides += ["eval.validation_env_kwargs={max_episode_steps: 5}"]
    overrides += ["eval.variants={short: {env_kwargs: {max_episode_steps: 3}, metrics: [length], description: cut}}"]
    result = train(load_task(find_task("gym:CartPole-v1", host), overrides), runs_dir=tmp_path)
    metrics = list(csv.DictReader(open(next(result.run_dir.glob("logs/metrics.csv")))))
    lengths = [float(row["eval/length"]) for row in metrics if row.get("eval/length")]
    assert len(lengths) >= 2 and max(lengths) <= 5
    agent = load_agent(str(result.run_dir))
    evaluation, means = policy_metrics(agent.runtime, agent, episodes=3, seed=0)
    assert min(e["length"] for e in evaluation.episodes) >= 8  # the plain evaluation is not cut
    assert means["length@short"] <= 3 and "return@short" not in means


def test_a_variant_naming_a_metric_the_domain_lacks_is_refused(tmp_path):
    from attnq.catalog import find_task
    from attnq.errors import TaskFileError
    from attnq.evaluation import policy_metrics
    from attnq.registry import load_plugins
    from attnq.runtime import prepare_task

    host = load_plugins()
    variant = "eval.variants={short: {env_kwargs: {max_episode_steps: 3}, metrics: [lenght], description: cut}}"
    runtime = prepare_task(load_task(find_task("gym:CartPole-v1", host), [variant]), host)
    with pytest.raises(TaskFileError, match=r"'eval.variants.short.metrics' names \['lenght'\].*fix: use some of"):
        policy_metrics(runtime, runtime.baseline("random", 0), episodes=2, seed=0)
    bad_kwargs = "eval.variants={short: {env_kwargs: {no_such_kwarg: 3}, metrics: [length], description: cut}}"
    with pytest.raises(TaskFileError, match=r"'eval.variants.short.env_kwargs'.*cannot be made"):
        prepare_task(load_task(find_task("gym:CartPole-v1", host), [bad_kwargs]), host)
    with pytest.raises(TaskFileError, match="variant name 'a b'"):
        load_task(
            find_task("gym:CartPole-v1", host),
            ["eval.variants={'a b': {env_kwargs: {}, metrics: [length], description: x}}"],
        )
