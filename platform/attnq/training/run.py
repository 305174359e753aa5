"""Train one task: make (or reopen) a run folder, build the Lightning Trainer, fit, checkpoint.

Everything a run can be refused for (a bad task, a resume with other learning settings, a GPU
that is not there) is checked before the run folder is touched. SIGINT and SIGTERM end the fit at
the next update with a checkpoint, and :class:`RunInterrupted` says how to resume.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from attnq.checkpoints import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    POLICY_CHECKPOINT,
    AtomicCheckpointIO,
    atomic_write_text,
    load_checkpoint_file,
    task_from_checkpoint,
)
from attnq.config import TaskConfig
from attnq.errors import CheckpointError, RunInterrupted, TaskFileError
from attnq.experiments.reuse import check_resumable, learning_hash
from attnq.registry import PluginHost
from attnq.runtime import TaskRuntime, prepare_task
from attnq.training.callbacks import (
    EnvStepProgressBar,
    GracefulStop,
    PeriodicCheckpoint,
    PeriodicEvaluation,
    RunStateWriter,
)
from attnq.training.dqn_module import DQNModule
from attnq.training.lock import run_lock


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    checkpoint: Path
    env_steps: int
    episodes: int
    wall_seconds: float
    evaluation_seconds: float = 0.0  # the part of wall_seconds spent in evaluations during training

    @property
    def env_steps_per_second(self) -> float:
        """Training throughput: env steps per second of the fit, learning included and the
        evaluations during training (validation episodes, not training) left out."""
        training_seconds = self.wall_seconds - self.evaluation_seconds
        return self.env_steps / training_seconds if training_seconds > 0 else float("nan")


def new_run_dir(task: TaskConfig, runs_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = runs_dir / task.name / f"{stamp}-seed{task.seed}"
    run_dir, n = base, 1
    while run_dir.exists():
        run_dir, n = base.with_name(f"{base.name}-{n}"), n + 1
    return run_dir


def log_version(resumed_at_env_steps: int) -> str:
    """``logs`` for a fresh run, ``logs-resumed-N`` for a fit resumed at env step N.

    Lightning's CSV logger deletes an existing metrics.csv in its folder, so each fit of a resumed
    run writes its own folder and the learning curve is their union.
    """
    return "logs" if resumed_at_env_steps == 0 else f"logs-resumed-{resumed_at_env_steps}"


def _loggers(task: TaskConfig, run_dir: Path, resumed_at_env_steps: int) -> list[Logger]:
    version = log_version(resumed_at_env_steps)
    loggers: list[Logger] = [CSVLogger(save_dir=str(run_dir), name="", version=version)]
    if task.trainer.tensorboard:
        loggers.append(
            TensorBoardLogger(save_dir=str(run_dir), name="", version=version.replace("logs", "tensorboard"))
        )
    return loggers


def check_compiler(task: TaskConfig) -> None:
    """``trainer.compile`` on CPU builds C++ kernels: say so up front, not in inductor's traceback."""
    if not task.trainer.compile:
        return
    on_cpu = task.trainer.accelerator == "cpu" or not torch.cuda.is_available()
    if on_cpu and not (os.environ.get("CXX") or any(shutil.which(name) for name in ("g++", "c++", "clang++"))):
        raise TaskFileError(
            "trainer.compile=true: torch.compile needs a C++ compiler on CPU and found none "
            "(CXX, g++, c++, clang++ on PATH); fix: install one (e.g. `apt install g++`) "
            "or set trainer.compile=false"
        )


def check_accelerator(task: TaskConfig) -> None:
    """``trainer.accelerator=gpu`` with no GPU visible: say so before anything starts."""
    if task.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        raise TaskFileError(
            "trainer.accelerator=gpu, but torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
            "fix: set trainer.accelerator=auto or cpu (or --device cpu), or install a CUDA build of torch"
        )


def check_memory(task: TaskConfig, runtime: TaskRuntime) -> None:
    """The replay buffer is allocated whole: refuse one this machine cannot hold, with the bytes."""
    observation_bytes = 4 * int(np.prod(runtime.observation_shape or (1,)))
    action_bytes = 8 * max(1, runtime.slate_size)
    needed = task.replay.capacity * (2 * observation_bytes + action_bytes + 8)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return  # no way to tell on this system
    if needed > 0.8 * available:
        raise TaskFileError(
            f"replay.capacity = {task.replay.capacity:,} needs {needed / 2**30:.1f} GiB for the replay buffer "
            f"({2 * observation_bytes + action_bytes + 8:,} bytes per transition), but this machine has "
            f"{available / 2**30:.1f} GiB free; fix: lower replay.capacity"
        )


def train(
    task: TaskConfig,
    runs_dir: Path = Path("runs"),
    resume: Path | None = None,
    host: PluginHost | None = None,
    run_dir: Path | None = None,
    runtime: TaskRuntime | None = None,
    on_evaluation: Callable[[int, dict[str, float], float], None] | None = None,
) -> TrainResult:
    """Train ``task``; with ``resume`` continue the run folder from its ``last.ckpt``.

    :param runtime: the task's runtime when the caller has built it already (it is built otherwise)
    :param on_evaluation: called after each evaluation during training with (env steps, mean metrics,
        the best :func:`validation_score` of the run so far, rounds before a resumption included)
    """
    checkpoint_path: Path | None = None
    start_steps = start_updates = 0
    if resume is not None:
        checkpoint_path = resume / CHECKPOINT_DIR / LAST_CHECKPOINT
        if not checkpoint_path.is_file() and (resume / POLICY_CHECKPOINT).is_file():
            raise CheckpointError(
                f"cannot resume {resume}: it holds only its exported {POLICY_CHECKPOINT} (no optimizer state or "
                f"replay buffer); fix: resume where its {CHECKPOINT_DIR}/ folder is, or train a new run"
            )
        if not checkpoint_path.is_file():
            raise CheckpointError(
                f"cannot resume {resume}: no {CHECKPOINT_DIR}/{LAST_CHECKPOINT} in it; fix: pass the run "
                "folder printed by `attnq train`"
            )
        checkpoint = load_checkpoint_file(checkpoint_path)
        check_resumable(task_from_checkpoint(checkpoint, checkpoint_path), task, checkpoint_path)
        start_steps = int(checkpoint["attnq"]["env_steps"])
        start_updates = int(checkpoint.get("global_step", 0))
        run_dir = resume
    runtime = runtime or prepare_task(task, host)  # bad options or files fail here, before any folder exists
    if resume is not None:
        runtime.check_data_fingerprint(checkpoint["attnq"].get("data_fingerprint"), checkpoint_path)
    check_compiler(task)
    check_accelerator(task)
    check_memory(task, runtime)
    if run_dir is None and runs_dir.exists() and not runs_dir.is_dir():
        raise TaskFileError(f"--runs-dir {runs_dir} is a file; fix: give a folder for run folders")
    run_dir = run_dir or new_run_dir(task, runs_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        return _fit(task, runtime, run_dir, checkpoint_path, start_steps, start_updates, on_evaluation)


def _fit(
    task: TaskConfig,
    runtime: TaskRuntime,
    run_dir: Path,
    checkpoint_path: Path | None,
    start_steps: int,
    start_updates: int,
    on_evaluation: Callable[[int, dict[str, float], float], None] | None,
) -> TrainResult:
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(task.to_dict(), sort_keys=False))
    pl.seed_everything(task.seed, workers=True, verbose=False)
    if task.trainer.torch_threads:
        torch.set_num_threads(task.trainer.torch_threads)
    module = DQNModule(task.to_dict(), runtime=runtime)
    checkpoints = PeriodicCheckpoint(run_dir / CHECKPOINT_DIR, task.trainer.checkpoint_every_env_steps, start_steps)
    stop = GracefulStop(checkpoints)
    callbacks: list[pl.Callback] = [checkpoints, stop, RunStateWriter(run_dir, checkpoints, learning_hash(task))]
    if task.trainer.progress_bar:
        callbacks.append(EnvStepProgressBar())
    if task.eval.every_env_steps:
        best_path = run_dir / CHECKPOINT_DIR / BEST_CHECKPOINT if task.eval.keep_best else None
        callbacks.append(
            PeriodicEvaluation(
                task.eval.every_env_steps,
                task.eval.episodes_during_training,
                task.eval.seed_during_training,
                best_path,
                (on_evaluation,) if on_evaluation else (),
            )
        )
    trainer = pl.Trainer(
        accelerator=task.trainer.accelerator,
        devices=1,
        max_epochs=-1,
        max_steps=start_updates + module.updates_needed(start_steps),
        logger=_loggers(task, run_dir, start_steps),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=task.trainer.log_every_updates,
        gradient_clip_val=task.learner.max_grad_norm,
        gradient_clip_algorithm="norm",
        deterministic=True,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    stop.install()  # a signal during the warm-up is honoured at the first update
    try:
        trainer.fit(module, ckpt_path=str(checkpoint_path) if checkpoint_path else None, weights_only=True)
    finally:
        stop.restore()
    wall = time.perf_counter() - start
    if stop.signal is not None:
        raise RunInterrupted(run_dir, stop.signal, checkpoints.saved_env_steps, task.trainer.max_env_steps)
    return TrainResult(
        run_dir,
        run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT,
        module.env_steps - start_steps,
        module.episodes,
        wall,
        module.evaluation_seconds,
    )
