"""The experiments pipeline's parts: declared field roles and what they allow to be reused, the
run state file, the progress view, the run lock, and clean stops on SIGTERM and SIGINT."""

from __future__ import annotations

import io
import signal
import subprocess
import time
from pathlib import Path

import pytest

from attnq.config import (
    BUDGET,
    DESCRIBES,
    EVALUATES,
    LEARNS,
    SPEED,
    TaskConfig,
    apply_overrides,
    leaf_fields,
    load_task,
    role_of,
    validate_task,
)
from attnq.errors import AttnqError, CheckpointError
from attnq.experiments.jobs import RunJob
from attnq.experiments.progress import ProgressView
from attnq.experiments.reuse import learning_hash, refusal
from attnq.experiments.state import RunState, read_state, trained_steps
from attnq.training.lock import run_lock
from attnq.training.run import train
from conftest import SMALL_MODEL, TASKS, attnq_command

SMALL_SEPSIS = [
    *SMALL_MODEL,
    "trainer.progress_bar=false",
    "env.num_envs=8",
    "learner.learning_starts=200",
    "replay.batch_size=32",
    "eval.episodes=20",
    "trainer.max_env_steps=600",
    "trainer.checkpoint_every_env_steps=200",
]


def _sepsis(*overrides: str) -> TaskConfig:
    return load_task(TASKS / "sepsis.yaml", [*SMALL_SEPSIS, *overrides])


def _changed(task: TaskConfig, *overrides: str) -> TaskConfig:
    return validate_task(apply_overrides(task.to_dict(), list(overrides)), "test")


# ----- roles ------------------------------------------------------------------------------------
def test_every_config_field_declares_its_role():
    fields = leaf_fields()
    assert len(fields) > 50 and "model.d_model" in fields and "trainer.accelerator" in fields
    roles = {path: role_of(path) for path in fields}  # raises for a field without one
    assert set(roles.values()) == {LEARNS, BUDGET, SPEED, EVALUATES, DESCRIBES}
    assert roles["trainer.max_env_steps"] == BUDGET and roles["eval.episodes"] == EVALUATES
    assert role_of("env.kwargs.config.lanes_count") == LEARNS  # inside a mapping: the mapping's role


def test_reuse_follows_the_roles():
    task = _sepsis()
    # speed, description and evaluation fields never force training again, nor change the hash
    other = _changed(
        task,
        "trainer.compile=true",
        "trainer.accelerator=cpu",
        "trainer.log_every_updates=3",
        "description=x",
        "eval.episodes=7",
    )
    assert refusal(task, other) is None and learning_hash(task) == learning_hash(other)
    # every learning field does, named in the refusal
    for override, path in (
        ("learner.lr=0.01", "learner.lr"),
        ("seed=4", "seed"),
        ("env.num_envs=4", "env.num_envs"),
        ("domain_options.reward=clipped", "domain_options.reward"),
    ):
        changed = _changed(task, override)
        assert refusal(task, changed)[0] == path and learning_hash(task) != learning_hash(changed)
    # a larger budget is reached by resuming; a smaller one is refused for reports
    assert refusal(task, _changed(task, "trainer.max_env_steps=900")) is None
    assert refusal(task, _changed(task, "trainer.max_env_steps=300"))[0] == "trainer.max_env_steps"
    assert refusal(task, _changed(task, "trainer.max_env_steps=300"), allow_smaller_budget=True) is None


def test_a_field_only_the_other_torso_reads_never_retrains_a_run():
    transformer = _sepsis()
    mlp = _changed(transformer, "model.torso=mlp")
    for override, path in (("model.dropout=0.3", "model.dropout"), ("model.layers=3", "model.layers")):
        changed = _changed(mlp, override)
        assert refusal(mlp, changed) is None and learning_hash(mlp) == learning_hash(changed)
        assert refusal(transformer, _changed(transformer, override))[0] == path
    assert refusal(transformer, _changed(transformer, "model.mlp_hidden=[8]")) is None
    assert refusal(mlp, _changed(mlp, "model.mlp_hidden=[8]"))[0] == "model.mlp_hidden"
    # fields both torsos read still count, and another torso is refused as such
    assert refusal(mlp, _changed(mlp, "model.d_model=16", "model.heads=1"))[0] == "model.d_model"
    assert refusal(mlp, _changed(transformer, "model.dropout=0.3"))[0] == "model.torso"


@pytest.mark.parametrize("name", ["../escape", "/abs/path", "a/b", "..", ".hidden", ""])
def test_task_names_that_are_paths_cannot_name_run_folders(tmp_path, name):
    with pytest.raises(AttnqError, match=r"field 'name'.*it names a folder"):
        _changed(_sepsis(), f"name={name}")
    completed = subprocess.run(
        attnq_command(
            "train",
            str(TASKS / "sepsis.yaml"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--set",
            *SMALL_SEPSIS,
            f"name={name}",
        ),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2 and "field 'name'" in completed.stderr and not (tmp_path / "runs").exists()


# ----- state file, lock, resume ------------------------------------------------------------------
@pytest.fixture(scope="module")
def sepsis_run(tmp_path_factory):
    task = _sepsis()
    return task, train(task, runs_dir=tmp_path_factory.mktemp("runs"))


def test_state_file_says_how_far_a_run_trained(sepsis_run):
    task, result = sepsis_run
    state = read_state(result.run_dir)
    assert state.status == "finished" and state.env_steps == result.env_steps >= task.trainer.max_env_steps
    assert state.learning_hash == learning_hash(task) and state.env_steps_per_second > 0 and state.wall_seconds > 0


def test_planning_reads_the_state_file_not_the_checkpoint(sepsis_run, tmp_path):
    _, result = sepsis_run
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(result.run_dir, copy)
    checkpoint = copy / "checkpoints" / "last.ckpt"
    steps = read_state(copy).env_steps
    checkpoint.write_bytes(b"x" * 100)  # a checkpoint that cannot be loaded: never read for planning
    assert trained_steps(copy) == steps
    (copy / "state.json").unlink()  # a run older than state files: read once from its checkpoint
    shutil.copy(result.run_dir / "checkpoints" / "last.ckpt", checkpoint)
    assert trained_steps(copy) == steps and read_state(copy).status == "finished"


def test_a_run_killed_before_its_first_checkpoint_trains_from_the_start(tmp_path):
    # what a worker killed in its warm-up leaves: a state file that says running, no checkpoint
    RunState(status="running", env_steps=0, live_env_steps=300, max_env_steps=600).write(tmp_path)
    assert trained_steps(tmp_path) == -1


def test_a_run_folder_trains_in_one_process_at_a_time(tmp_path):
    with run_lock(tmp_path):
        held = subprocess.run(
            [
                "python3",
                "-c",
                f"""
import fcntl, os, sys
handle = os.open({str(tmp_path / ".train.lock")!r}, os.O_RDWR)
try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(3)
""",
            ]
        )
        assert held.returncode == 3
    with run_lock(tmp_path):  # released when the holder ends
        pass


@pytest.mark.parametrize(("budget", "num_envs", "learning_starts"), [(1000, 16, 200), (203, 8, 200), (57, 8, 0)])
def test_a_run_stops_exactly_at_its_budget_whatever_num_envs(tmp_path, budget, num_envs, learning_starts):
    task = _sepsis(
        f"trainer.max_env_steps={budget}", f"env.num_envs={num_envs}", f"learner.learning_starts={learning_starts}"
    )
    result = train(task, runs_dir=tmp_path)
    assert result.env_steps == read_state(result.run_dir).env_steps == budget
    resumed = train(_changed(task, f"trainer.max_env_steps={budget + 13}"), resume=result.run_dir)
    assert resumed.env_steps == 13 and read_state(result.run_dir).env_steps == budget + 13  # this fit's, then all


def test_resume_refuses_any_learning_change_and_touches_nothing(sepsis_run):
    task, result = sepsis_run
    files = {p: p.stat().st_mtime_ns for p in result.run_dir.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError, match=r"trained with learner.lr = 0.0003, but the task asks for 0.01"):
        train(_changed(task, "learner.lr=0.01", "trainer.max_env_steps=800"), resume=result.run_dir)
    with pytest.raises(CheckpointError, match=r"trained with seed = 0, but the task asks for 5"):
        train(_changed(task, "seed=5", "trainer.max_env_steps=800"), resume=result.run_dir)
    assert files == {p: p.stat().st_mtime_ns for p in result.run_dir.rglob("*") if p.is_file()}


def test_train_resume_keeps_the_run_s_own_settings_unless_set(sepsis_run, tmp_path):
    import shutil

    _, result = sepsis_run
    run_dir = tmp_path / "run"
    shutil.copytree(result.run_dir, run_dir)
    # the run has a small network that the task file does not: resuming still uses the run's own
    resumed = subprocess.run(
        attnq_command("train", "sepsis", "--resume", str(run_dir), "--set", "trainer.max_env_steps=800"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert read_state(run_dir).env_steps >= 800 and load_task(run_dir / "config.yaml").model.d_model == 32
    other_seed = subprocess.run(
        attnq_command("train", "sepsis", "--resume", str(run_dir), "--set", "seed=3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert other_seed.returncode == 2 and "trained with seed = 0, but the task asks for 3" in other_seed.stderr
    other_task = subprocess.run(
        attnq_command("train", "highway-fast", "--resume", str(run_dir)), capture_output=True, text=True
    )
    assert other_task.returncode == 2 and "is a run of task 'sepsis', not 'highway-fast'" in other_task.stderr
    assert load_task(run_dir / "config.yaml").seed == 0  # a refused resume leaves the run's description alone


def test_a_gpu_that_is_not_there_is_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the error is for machines without one")
    completed = subprocess.run(
        attnq_command(
            "train", str(TASKS / "sepsis.yaml"), "--runs-dir", str(tmp_path), "--device", "gpu", "--set", *SMALL_SEPSIS
        ),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2 and "trainer.accelerator=gpu" in completed.stderr and "fix:" in completed.stderr
    assert "Traceback" not in completed.stderr and not any(tmp_path.iterdir())


# ----- signals ----------------------------------------------------------------------------------
def _start_and_wait_for_training(tmp_path: Path, overrides: list[str]) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen(
        attnq_command("train", str(TASKS / "sepsis.yaml"), "--runs-dir", str(tmp_path), "--set", *overrides),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        states = list(tmp_path.glob("sepsis/*/state.json"))
        if states and (state := read_state(states[0].parent)) and state.live_env_steps > 1000:
            return process, states[0].parent
        time.sleep(0.3)
    process.kill()
    raise AssertionError(f"training did not start: {process.communicate()}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_training_with_a_checkpoint_and_says_how_to_resume(tmp_path, signum):
    # checkpoints far apart: what the signal saves is more than the periodic checkpoints would have
    overrides = [o for o in SMALL_SEPSIS if not o.startswith("trainer.")] + [
        "trainer.progress_bar=false",
        "trainer.max_env_steps=1000000",
        "trainer.checkpoint_every_env_steps=500000",
    ]
    process, run_dir = _start_and_wait_for_training(tmp_path, overrides)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert f"interrupted by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr
    resume = next(line for line in stderr.splitlines() if line.startswith("resume with: "))
    assert f"--resume {run_dir}" in resume and "trainer.max_env_steps=1000000" in resume
    state = read_state(run_dir)
    assert state.status == "interrupted" and 1000 < state.env_steps < 1_000_000  # saved at the signal, not at 500k
    from attnq.checkpoints import load_checkpoint_file

    assert load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["attnq"]["env_steps"] == state.env_steps


# ----- progress ---------------------------------------------------------------------------------
def test_progress_counts_runs_and_estimates_the_time_left(tmp_path):
    task = _sepsis().to_dict()
    jobs = [RunJob({**task, "seed": seed}, str(tmp_path / f"run{seed}")) for seed in range(3)]
    for seed, (status, steps, rate) in enumerate([("finished", 600, 100.0), ("running", 200, 100.0)]):
        (tmp_path / f"run{seed}").mkdir()
        RunState(
            status=status, env_steps=steps, live_env_steps=steps, max_env_steps=600, env_steps_per_second=rate
        ).write(tmp_path / f"run{seed}")
    stream = io.StringIO()
    view = ProgressView(jobs, "test", interval=0, stream=stream, clock=lambda: 0.0)
    from attnq.experiments.jobs import Outcome

    view.finished(Outcome(jobs[0].label, "trained", 600, "here", 6.0))
    line = stream.getvalue().splitlines()[-1]
    # one running (400 left) and one queued (600 left) at 100 env steps/s, one at a time: 10 s
    assert line == "[test] runs: 1/3 done, 1 running, 1 queued (sepsis/transformer-seed1 200/600); ETA 10 s"


# ----- bounds and bad paths: one message, exit status 2, nothing written -----------------------------
@pytest.mark.parametrize(
    "override, field",
    [
        ("learner.lr=.inf", "learner.lr"),
        ("learner.gamma=.nan", "learner.gamma"),
        ("replay.batch_size=1000000", "replay"),
        ("seed=99999999999", "seed"),
        ("replay.capacity=100000000000", "replay.capacity"),
        ("model.layers=[1", "model.layers=[1"),
    ],
)
def test_out_of_bounds_settings_are_one_clear_error(tmp_path, override, field):
    completed = subprocess.run(
        attnq_command(
            "train", str(TASKS / "sepsis.yaml"), "--runs-dir", str(tmp_path / "runs"), "--set", *SMALL_SEPSIS, override
        ),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2 and field in completed.stderr and "fix" in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr and not (tmp_path / "runs").exists()


def test_a_task_file_that_is_not_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes((TASKS / "sepsis.yaml").read_bytes() + "description: caf\xe9\n".encode("latin-1"))
    completed = subprocess.run(
        attnq_command("train", str(path), "--runs-dir", str(tmp_path / "runs")), capture_output=True, text=True
    )
    assert completed.returncode == 2 and "not UTF-8" in completed.stderr and "Traceback" not in completed.stderr


def test_paths_that_are_the_wrong_kind_are_clear_errors(sepsis_run, tmp_path):
    _, result = sepsis_run
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    trained = subprocess.run(
        attnq_command("train", str(TASKS / "sepsis.yaml"), "--runs-dir", str(a_file), "--set", *SMALL_SEPSIS),
        capture_output=True,
        text=True,
    )
    assert trained.returncode == 2 and "is a file" in trained.stderr and "Traceback" not in trained.stderr
    evaluated = subprocess.run(
        attnq_command("evaluate", str(result.run_dir), "--episodes", "2", "--out", str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert evaluated.returncode == 2 and "is a folder" in evaluated.stderr and "Traceback" not in evaluated.stderr


def test_a_diverging_loss_stops_training_with_a_clear_error(tmp_path):
    completed = subprocess.run(
        attnq_command(
            "train",
            str(TASKS / "sepsis.yaml"),
            "--runs-dir",
            str(tmp_path),
            "--set",
            *SMALL_SEPSIS,
            "learner.lr=1e30",
            "trainer.log_every_updates=1",
        ),
        capture_output=True,
        text=True,
    )
    assert (
        completed.returncode == 2
        and "the TD loss became" in completed.stderr
        and "lower learner.lr" in completed.stderr
    )
    [state] = [read_state(p.parent) for p in tmp_path.glob("sepsis/*/state.json")]
    assert state.status == "failed" and "TD loss" in state.error


def test_run_interrupted_crosses_processes_intact():
    import pickle

    from attnq.errors import RunInterrupted

    error = pickle.loads(pickle.dumps(RunInterrupted(Path("/runs/x"), signal.SIGTERM, 1200, 5000)))
    assert error.exit_status == 143 and error.run_dir == Path("/runs/x") and "1,200 of 5,000" in str(error)


# ----- checkpoints on disk ------------------------------------------------------------------------
def test_a_checkpoint_damaged_on_disk_is_refused(sepsis_run, tmp_path):
    import numpy as np

    from attnq.agent import load_agent
    from attnq.checkpoints import load_checkpoint_file

    _, result = sepsis_run
    weights = load_checkpoint_file(result.checkpoint)["state_dict"]
    name, tensor = max(weights.items(), key=lambda item: item[1].numel())  # the largest weight matrix
    data = bytearray(result.checkpoint.read_bytes())
    offset = data.find(tensor.numpy().tobytes())
    assert offset > 0, name
    data[offset + 5] ^= 0x40  # one flipped bit inside the stored weights
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_agent(str(damaged))
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_agent(str(empty))
    assert np.isfinite(tensor.numpy()).all()


def test_writing_a_checkpoint_removes_temporaries_a_killed_write_left(sepsis_run):
    task, result = sepsis_run
    stale = result.run_dir / "checkpoints" / ".last.ckpt.killed.tmp"
    stale.write_bytes(b"half a checkpoint")
    train(_changed(task, "trainer.max_env_steps=700"), resume=result.run_dir)
    assert not stale.exists() and read_state(result.run_dir).env_steps >= 700


def test_sigterm_stops_a_report_which_resumes_when_run_again(tmp_path):
    overrides = [o for o in SMALL_SEPSIS if not o.startswith("trainer.")] + [
        "trainer.progress_bar=false",
        "trainer.max_env_steps=8000",
        "trainer.checkpoint_every_env_steps=100000",
    ]
    command = attnq_command(
        "report",
        "--tasks",
        str(TASKS / "sepsis.yaml"),
        "--torsos",
        "mlp",
        "--seeds",
        "0",
        "--set",
        *overrides,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "out"),
    )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "sepsis" / "mlp-seed0"
    deadline = time.time() + 180
    while time.time() < deadline and not (
        (run_dir / "state.json").is_file() and read_state(run_dir).live_env_steps > 1000
    ):
        time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143 and "interrupted by SIGTERM" in stderr and "Traceback" not in stderr, stderr
    assert "resume with: attnq report" in stderr and not (tmp_path / "out").exists()
    stopped = read_state(run_dir)
    assert stopped.status == "interrupted" and 1000 < stopped.env_steps < 8000
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming {run_dir} from {stopped.env_steps:,} env steps" in again.stderr
    assert read_state(run_dir).status == "finished" and (tmp_path / "out" / "README.md").is_file()
