"""A report's runs committed without their checkpoints: the exported ``policy.ckpt`` beside each
run's evaluation is all a fresh clone needs to reuse the run, redraw the report and load the agent."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from attnq.agent import load_agent
from attnq.checkpoints import CHECKSUM_KEY, load_checkpoint_file
from attnq.cli import main
from attnq.config import load_task
from attnq.errors import AttnqError, CheckpointError
from attnq.experiments.jobs import ensure_baseline
from attnq.experiments.pipeline import run_plan
from attnq.experiments.plan import ReportPlan, ReportTask, report_profile
from attnq.experiments.state import read_state
from attnq.registry import load_plugins
from conftest import REPO, TASKS
from test_experiments import SMALL_SEPSIS

# validation rounds so that the run keeps a best checkpoint: the policy is the evaluated one
KEEPS_BEST = [*SMALL_SEPSIS, "eval.keep_best=true", "eval.every_env_steps=200", "eval.episodes_during_training=8"]


def _plan(*overrides: str) -> ReportPlan:
    return ReportPlan(
        name="committed",
        tasks=(ReportTask(task=str(TASKS / "sepsis.yaml"), overrides=(*KEEPS_BEST, *overrides)),),
        torsos=("transformer",),
        seeds=(0,),
        keeps_runs=True,
    )


def _run(plan: ReportPlan, runs_dir):
    return run_plan(plan, runs_dir, baselines=False, progress_interval=0, stream=io.StringIO())


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """A finished, evaluated run, and a copy of it as a commit holds it (no checkpoints folder)."""
    runs_dir = tmp_path_factory.mktemp("runs")
    records = _run(_plan(), runs_dir)
    run_dir = runs_dir / "sepsis" / "transformer-seed0"
    clone = tmp_path_factory.mktemp("clone") / "runs"
    shutil.copytree(runs_dir, clone, ignore=shutil.ignore_patterns("checkpoints"))
    return records, run_dir, clone, clone / "sepsis" / "transformer-seed0"


def test_the_policy_is_the_evaluated_network_alone(committed):
    _, run_dir, _, _ = committed
    policy = torch.load(run_dir / "policy.ckpt", weights_only=True)
    assert set(policy) == {"state_dict", "hyper_parameters", "attnq", "attnq_policy_of", CHECKSUM_KEY}
    assert policy["attnq_policy_of"] == "best.ckpt"
    assert set(policy["attnq"]) <= {"env_steps", "episodes", "wall_seconds", "data_fingerprint"}
    # one network: the averaged one where the task averages its weights (sepsis does), else the online one
    assert len({key.split(".")[0] for key in policy["state_dict"]}) == 1
    last = run_dir / "checkpoints" / "last.ckpt"
    assert (run_dir / "policy.ckpt").stat().st_size * 5 < last.stat().st_size  # no replay buffer, no optimizer
    best = load_agent(str(run_dir / "checkpoints" / "best.ckpt"), device="cpu")
    exported = load_agent(str(run_dir / "policy.ckpt"), device="cpu")
    for name, tensor in best.q_network.state_dict().items():
        assert torch.equal(tensor, exported.q_network.state_dict()[name]), name


def test_a_run_without_its_checkpoints_is_reused_not_trained_again(committed):
    records, run_dir, clone, clone_run = committed
    state, evaluation = (clone_run / "state.json").read_text(), (clone_run / "evaluation.json").read_text()
    again = _run(_plan(), clone)
    assert (clone_run / "state.json").read_text() == state and not (clone_run / "checkpoints").exists()
    assert (clone_run / "evaluation.json").read_text() == evaluation
    assert again[0].runs[0].metrics == records[0].runs[0].metrics


def test_a_run_without_its_checkpoints_loads_and_acts_as_before(committed, capsys):
    _, run_dir, _, clone_run = committed
    trained = load_agent(str(run_dir / "checkpoints" / "best.ckpt"), device="cpu")
    restored = load_agent(str(clone_run), device="cpu")  # a run folder: its policy.ckpt
    observations = np.stack([trained.runtime.context.probe_env.observation_space.sample() for _ in range(64)])
    np.testing.assert_array_equal(trained(observations), restored(observations))
    assert restored.env_steps == trained.env_steps <= read_state(run_dir).env_steps  # the best
    assert main(["evaluate", str(clone_run), "--episodes", "5"]) == 0
    assert f"agent ({clone_run / 'policy.ckpt'})" in capsys.readouterr().out  # says which network it evaluated
    with pytest.raises(CheckpointError, match="holds no target network"):
        load_agent(str(clone_run), device="cpu", network="target")


def test_evaluate_builds_a_baseline_as_the_report_does_whatever_the_episode_seed(committed, tmp_path, capsys):
    """``evaluate RUN --baseline B --seed S``, RUN of the task file's seed, gives the report's figure for B on
    episodes from S: the baseline is built from the task's seed, never from the episodes' (a seeded policy
    would act otherwise)."""
    _, _, _, clone_run = committed
    assert main(["evaluate", str(clone_run), "--baseline", "random", "--seed", "40", "--episodes", "6"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mean"]
    task = load_task(TASKS / "sepsis.yaml", [*KEEPS_BEST, "eval.seed=40", "eval.episodes=6"])
    reported = ensure_baseline(task, tmp_path, "random", None, say=lambda line: None)["metrics"]
    assert evaluated == pytest.approx(reported, rel=1e-12)


def test_a_run_without_its_checkpoints_cannot_be_trained_further(committed, capsys):
    _, _, clone, clone_run = committed
    with pytest.raises(AttnqError, match="holds only its exported policy.ckpt") as raised:
        _run(_plan("trainer.max_env_steps=1200"), clone)
    assert f"delete {clone_run}" in str(raised.value) and not (clone_run / "checkpoints").exists()
    assert main(["train", "sepsis", "--resume", str(clone_run)]) == 2
    assert "holds only its exported policy.ckpt" in capsys.readouterr().err


def test_git_keeps_a_full_report_s_runs_but_not_their_checkpoints():
    host = load_plugins()
    assert report_profile("full", host).keeps_runs and not report_profile("quick", host).keeps_runs
    run = "docs/reports/full/runs/sepsis/transformer-seed0"
    kept = [f"{run}/{name}" for name in ("policy.ckpt", "evaluation.json", "state.json", "config.yaml")]
    kept += [f"{run}/logs/metrics.csv", "docs/reports/full/runs/sepsis/baselines/random.json"]
    dropped = [f"{run}/checkpoints/last.ckpt", f"{run}/checkpoints/best.ckpt", f"{run}/.train.lock"]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *kept, *dropped], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert sorted(ignored) == sorted(dropped)


def test_the_kept_checkpoint_is_the_best_exact_return_on_validation(committed):
    """Sepsis computes exact returns, so validation rounds choose on them, without sampling noise:
    the final evaluation of the kept checkpoint gives the best round's figure again."""
    records, run_dir, _, _ = committed
    rows = [row for row in csv.DictReader(open(run_dir / "logs" / "metrics.csv")) if row.get("eval/exact_return")]
    exact = [float(row["eval/exact_return"]) for row in rows]
    assert len(exact) >= 2 and all(0 < value < 1 for value in exact)
    best = load_checkpoint_file(run_dir / "checkpoints" / "best.ckpt")["attnq"]
    assert best["best_eval_return"] == pytest.approx(max(exact), rel=1e-6)
    assert records[0].runs[0].metrics["exact_return"] == pytest.approx(max(exact), rel=1e-6)
