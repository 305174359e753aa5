"""The Ray executor, for real: a local Ray, a two-node cluster simulated on this machine, a worker
killed mid-run, and the clear errors for addresses and resources that cannot work."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray executor's tests need attnq[ray]")

from attnq.errors import AttnqError  # noqa: E402
from attnq.experiments.executors import RayExecutor  # noqa: E402
from attnq.experiments.pipeline import run_plan  # noqa: E402
from attnq.experiments.plan import ReportPlan, ReportTask  # noqa: E402
from attnq.experiments.state import read_state  # noqa: E402
from conftest import SMALL_MODEL, TASKS, attnq_command  # noqa: E402

# Two tiny tasks whose runs take seconds; the same overrides serve both.
TINY = [
    *SMALL_MODEL,
    "trainer.progress_bar=false",
    "env.num_envs=8",
    "learner.learning_starts=200",
    "replay.batch_size=32",
    "trainer.max_env_steps=600",
    "trainer.checkpoint_every_env_steps=200",
    "eval.episodes=20",
    "eval.every_env_steps=0",
    "eval.keep_best=false",
]


@pytest.fixture
def fresh_ray():
    """Each test starts and stops its own Ray."""
    if ray.is_initialized():
        ray.shutdown()
    yield
    if ray.is_initialized():
        ray.shutdown()


def _report(runs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        attnq_command(
            "report",
            "--tasks",
            str(TASKS / "sepsis.yaml"),
            str(TASKS / "scan-simple.yaml"),
            "--torsos",
            "transformer",
            "--seeds",
            "0",
            "1",
            "--set",
            *TINY,
            "--runs-dir",
            str(runs),
            "--out",
            str(out),
            "--name",
            "tiny",
            *extra,
        ),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _figures(out: Path) -> dict:
    """What a report says of each task, less the speeds (which depend on the machine's load)."""
    tasks = json.loads((out / "results.json").read_text())["tasks"]
    return {
        t["task"]: {
            "per_seed": {torso: agent["per_seed"] for torso, agent in t["agents"].items()},
            "baselines": t["baselines"],
        }
        for t in tasks
    }


def test_ray_and_serial_reports_give_the_same_figures(tmp_path):
    serial = _report(tmp_path / "runs-serial", tmp_path / "serial")
    assert serial.returncode == 0, serial.stderr
    on_ray = _report(tmp_path / "runs-ray", tmp_path / "ray", "--executor", "ray", "--num-cpus", "2")
    assert on_ray.returncode == 0, on_ray.stderr
    assert _figures(tmp_path / "serial") == _figures(tmp_path / "ray")
    assert "[tiny, ray] runs: 4/4 done, 0 running, 0 queued; baselines: 4/4 done" in on_ray.stderr  # the progress view
    states = [read_state(p.parent) for p in (tmp_path / "runs-ray").glob("*/*/state.json")]
    assert len(states) == 4 and all(s.status == "finished" and s.where.startswith("ray node") for s in states)


def _tiny_plan(seeds: tuple[int, ...], *extra: str) -> ReportPlan:
    return ReportPlan(
        name="tiny",
        seeds=seeds,
        torsos=("transformer",),
        tasks=(ReportTask(task=str(TASKS / "sepsis.yaml"), overrides=(*TINY, *extra)),),
    )


def test_runs_land_on_every_node_of_a_cluster(tmp_path, fresh_ray):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        stream = io.StringIO()
        records = run_plan(
            _tiny_plan((0, 1, 2, 3)),
            tmp_path,
            RayExecutor(address=cluster.address),
            baselines=False,
            progress_interval=0,
            stream=stream,
        )
        assert len(records[0].runs) == 4
        nodes = {read_state(p.parent).where for p in tmp_path.glob("*/*/state.json")}
        assert len(nodes) == 2, stream.getvalue()
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_killed_worker_is_retried_from_its_last_checkpoint(tmp_path, fresh_ray):
    # a long enough run with frequent checkpoints; its worker is killed once a checkpoint exists
    plan = _tiny_plan((0,), "trainer.max_env_steps=6000", "trainer.checkpoint_every_env_steps=400")
    run_dir = tmp_path / "sepsis" / "transformer-seed0"
    killed: list[int] = []

    def kill_once_checkpointed() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            state = read_state(run_dir) if (run_dir / "state.json").is_file() else None
            if state is not None and state.status == "running" and 400 <= state.env_steps < 5000:
                os.kill(state.pid, signal.SIGKILL)
                killed.append(state.env_steps)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_once_checkpointed)
    killer.start()
    records = run_plan(
        plan, tmp_path, RayExecutor(num_cpus=2), baselines=False, progress_interval=0, stream=io.StringIO()
    )
    killer.join()
    assert killed, "the run finished before a checkpoint could be caught"
    [record] = records
    assert [(run.seed, run.env_steps) for run in record.runs] == [(0, 6000)]  # one run, counted once, to its budget
    state = read_state(run_dir)
    assert state.status == "finished" and state.env_steps == 6000
    # trained once: the first fit up to the kill, then one resumed fit from the checkpoint it had saved
    logs = sorted(p.name for p in run_dir.glob("logs*"))
    assert len(logs) == 2 and logs[0] == "logs" and logs[1].startswith("logs-resumed-")
    resumed_at = int(logs[1].removeprefix("logs-resumed-"))
    assert killed[0] <= resumed_at < 6000 and resumed_at % 400 == 0


def test_unreachable_cluster_and_impossible_requests_are_clear_errors(tmp_path, fresh_ray):
    started = time.time()
    completed = subprocess.run(
        attnq_command(
            "report",
            "--tasks",
            str(TASKS / "sepsis.yaml"),
            "--set",
            *TINY,
            "--runs-dir",
            str(tmp_path / "runs"),
            "--out",
            str(tmp_path / "out"),
            "--executor",
            "ray",
            "--ray-address",
            "127.0.0.1:9",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        completed.returncode == 2 and "no Ray cluster answers there" in completed.stderr and "fix:" in completed.stderr
    )
    assert "Traceback" not in completed.stderr and time.time() - started < 120
    assert not (tmp_path / "out").exists()
    with pytest.raises(
        AttnqError, match=r"asks for 8 CPUs and 0 GPUs, but the largest Ray node has 2 CPUs and 0 GPUs; fix"
    ):
        run_plan(
            _tiny_plan((0,)),
            tmp_path / "runs",
            RayExecutor(num_cpus=2, cpus_per_run=8),
            baselines=False,
            progress_interval=0,
            stream=io.StringIO(),
        )
    assert not list((tmp_path / "runs").glob("*/*"))  # refused before any run folder
    with pytest.raises(AttnqError, match="--gpus-per-run must be 0 or more"):
        RayExecutor(gpus_per_run=-1)


def _tune_sepsis(out: Path, overrides: list[str], *params: str, samples: int, grace_env_steps: int = 0) -> list[str]:
    """`attnq tune` of the sepsis task on this machine's 2 cores, confirmed on one seed."""
    grace = ["--grace-env-steps", str(grace_env_steps)] if grace_env_steps else []
    searched = [word for param in params for word in ("--param", param)]
    return attnq_command(
        "tune", str(TASKS / "sepsis.yaml"), "--set", *overrides, *searched, "--samples", str(samples), *grace,
        "--confirm-seeds", "1", "--num-cpus", "2", "--runs-dir", str(out),
    )  # fmt: skip


def test_tune_stops_weak_trials_early_and_writes_a_task_file_that_trains(tmp_path, fresh_ray):
    out = tmp_path / "tune"
    sweep = [*TINY[:-2], "trainer.max_env_steps=1600", "eval.every_env_steps=200", "eval.episodes_during_training=20"]
    completed = subprocess.run(
        _tune_sepsis(
            out, sweep, "learner.lr=loguniform:1e-5:1e-2", "replay.batch_size=16,32", samples=6, grace_env_steps=200
        ),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads((out / "trials.json").read_text())
    assert len(result["trials"]) == 6 and not any(t["error"] for t in result["trials"])
    assert any(t["stopped_early"] for t in result["trials"]) and any(not t["stopped_early"] for t in result["trials"])
    assert all(
        1e-5 <= t["point"]["learner.lr"] <= 1e-2 and t["point"]["replay.batch_size"] in (16, 32)
        for t in result["trials"]
    )
    tuned = out / "sepsis-tuned.yaml"
    from attnq.config import load_task

    best = load_task(tuned)
    finished = [t for t in result["trials"] if not t["stopped_early"]]
    top = max(finished, key=lambda t: t["validation_return"])
    assert best.learner.lr == pytest.approx(top["point"]["learner.lr"]) and best.name == "sepsis-tuned"
    # ranked on the exact return of the last validation round (sepsis computes it and keeps no best checkpoint)
    metrics = csv.DictReader(open(out / "trials" / top["trial"] / "logs" / "metrics.csv"))
    exact = [float(row["eval/exact_return"]) for row in metrics if row.get("eval/exact_return")]
    assert top["validation_return"] == pytest.approx(exact[-1], rel=1e-6)
    # the best point and the task as it was, trained again on the confirmation seed through the pipeline
    assert {p.parent.parent.name for p in (out / "confirm").glob("*/*/evaluation.json")} == {"sepsis", "sepsis-tuned"}
    page = (out / "README.md").read_text()
    assert "stopped early" in page and "### sepsis-tuned" in page
    trained = subprocess.run(
        attnq_command("train", str(tuned), "--runs-dir", str(tmp_path / "runs"), "--set", "trainer.max_env_steps=300"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr


@pytest.mark.parametrize(
    "param, message",
    [
        ("learner.lrr=0.1,0.2", "is not a task field"),
        ("learner.lr=loguniform:0:1e-3", "LOW > 0"),
        ("learner.lr=gaussian:1:2", "unknown distribution 'gaussian'"),
        ("model.layers=1,zero", "model.layers"),
    ],
)
def test_bad_sweep_parameters_are_clear_errors(tmp_path, param, message):
    completed = subprocess.run(
        attnq_command(
            "tune",
            str(TASKS / "sepsis.yaml"),
            "--set",
            *TINY,
            "eval.every_env_steps=200",
            "--param",
            param,
            "--runs-dir",
            str(tmp_path / "tune"),
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2 and message in completed.stderr and "fix" in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr and not (tmp_path / "tune").exists()


def test_sigterm_to_a_ray_report_checkpoints_its_running_runs(tmp_path):
    overrides = [o for o in TINY if not o.startswith("trainer.")] + [
        "trainer.progress_bar=false",
        "trainer.max_env_steps=400000",
        "trainer.checkpoint_every_env_steps=200000",
    ]
    process = subprocess.Popen(
        attnq_command(
            "report",
            "--tasks",
            str(TASKS / "sepsis.yaml"),
            "--torsos",
            "mlp",
            "--seeds",
            "0",
            "1",
            "--set",
            *overrides,
            "--runs-dir",
            str(tmp_path / "runs"),
            "--out",
            str(tmp_path / "out"),
            "--executor",
            "ray",
            "--num-cpus",
            "2",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = [tmp_path / "runs" / "sepsis" / f"mlp-seed{seed}" for seed in (0, 1)]
    deadline = time.time() + 240
    while time.time() < deadline and not all(
        (r / "state.json").is_file() and read_state(r).live_env_steps > 2000 for r in runs
    ):
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 143 and "interrupted by SIGTERM" in stderr and "resume with: attnq report" in stderr, (
        stderr
    )
    for run in runs:  # each worker wrote a checkpoint where it stopped, not at the 200k periodic one
        state = read_state(run)
        assert state.status == "interrupted" and 2000 < state.env_steps < 200_000, state
    assert not (tmp_path / "out").exists()


def test_an_interrupted_tune_resumes_its_trials_and_refuses_another_search_in_its_folder(tmp_path):
    out = tmp_path / "tune"
    sweep = [
        *TINY[:-2],
        "trainer.max_env_steps=6000",
        "trainer.checkpoint_every_env_steps=400",
        "eval.every_env_steps=1000",
        "eval.episodes_during_training=10",
    ]

    def tune(samples: int = 2) -> list[str]:
        return _tune_sepsis(out, sweep, "learner.lr=loguniform:1e-4:1e-3", samples=samples)

    process = subprocess.Popen(tune(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not list((out / "trials").glob("*/checkpoints/*.ckpt")):
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143 and "interrupted by SIGTERM" in stderr and "resume with: attnq tune" in stderr, (
        stderr
    )
    assert (out / "search.json").is_file() and not (out / "trials.json").exists()
    stopped = {
        run.name: read_state(run).env_steps
        for run in (out / "trials").iterdir()
        if (run / "checkpoints" / "last.ckpt").is_file() and read_state(run).env_steps < 6000
    }
    assert stopped, "no trial was stopped between its checkpoints"

    resumed = subprocess.run(tune(), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming the search" in resumed.stdout and "(2/2)" in resumed.stdout  # counts trials of both parts
    result = json.loads((out / "trials.json").read_text())
    assert len(result["trials"]) == 2 and not any(t["error"] for t in result["trials"])
    for name, steps in stopped.items():  # carried on from its checkpoint, not trained again from the start
        run = out / "trials" / name
        assert list(run.glob("logs-resumed-*")) and read_state(run).live_env_steps > steps

    again = subprocess.run(tune(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "finished before" in again.stdout, again.stdout + again.stderr
    assert json.loads((out / "trials.json").read_text()) == result
    other = subprocess.run(tune(samples=3), capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and "holds another search" in other.stderr and "samples" in other.stderr, other.stderr


@pytest.mark.parametrize("rungs_before_the_stop", [1, 2, 5])
def test_asha_judges_a_resumed_search_by_the_scores_recorded_before_the_stop(tmp_path, rungs_before_the_stop):
    """Restored from the settings it started with, as Tune restores it, the scheduler reads its rung
    records back: it stops what an uninterrupted ASHA stops, where a fresh one would let it pass."""
    import pickle
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from attnq.experiments.asha import ResumableASHA
    from attnq.experiments.sweep import METRIC

    settings = {"time_attr": "env_steps", "max_t": 800, "grace_period": 100, "reduction_factor": 2}
    started = pickle.dumps(ResumableASHA(str(tmp_path / "rungs.pkl"), **settings))  # as tuner.pkl holds it

    def scheduler(kind):
        made = pickle.loads(started) if kind == "resumable" else ASHAScheduler(**settings)
        made.set_search_properties(METRIC, "max")
        return made

    before, uninterrupted = scheduler("resumable"), scheduler("plain")
    for index in range(rungs_before_the_stop):  # good trials reach the first rungs, then the search stops
        good = SimpleNamespace(trial_id=f"good{index}")
        for each in (before, uninterrupted):
            each.on_trial_add(None, good)
            for steps in (100, 200, 400):
                each.on_trial_result(None, good, {"env_steps": steps, METRIC: 0.9 + 0.01 * index})
    weak = SimpleNamespace(trial_id="weak")
    for resumed in (scheduler("resumable"), uninterrupted):
        resumed.on_trial_add(None, weak)
        assert resumed.on_trial_result(None, weak, {"env_steps": 100, METRIC: 0.5}) == TrialScheduler.STOP
    fresh = scheduler("plain")  # what Tune's restore alone gives: no records, so the weak trial passes
    fresh.on_trial_add(None, weak)
    assert fresh.on_trial_result(None, weak, {"env_steps": 100, METRIC: 0.5}) == TrialScheduler.CONTINUE


def test_a_search_folder_is_checked_against_the_search_asked_for(tmp_path):
    from attnq.checkpoints import atomic_write_text
    from attnq.experiments.sweep import SEARCH_FILE, check_same_search

    identity = {"task": "sepsis", "learning_hash": "abc", "params": [["learner.lr", "choice", [1, 2]]], "samples": 8}
    check_same_search(tmp_path, identity)  # a folder from before search.json existed: taken as it is
    atomic_write_text(tmp_path / SEARCH_FILE, json.dumps(identity))
    check_same_search(tmp_path, dict(identity))
    for changed in ({"samples": 9}, {"learning_hash": "abd"}, {"params": [["learner.lr", "choice", [1, 3]]]}):
        with pytest.raises(AttnqError, match=f"differs in {next(iter(changed))}.*fix: run again"):
            check_same_search(tmp_path, identity | changed)
