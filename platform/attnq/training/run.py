"""Train one task: make (or reopen) a run folder, build the Lightning Trainer, fit, checkpoint."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from attnq.checkpoints import (BEST_CHECKPOINT, CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT, AtomicCheckpointIO, atomic_write_text,
                               check_same_task, load_checkpoint_file, task_from_checkpoint)
from attnq.config import TaskConfig
from attnq.errors import CheckpointError, TaskFileError
from attnq.registry import PluginHost
from attnq.runtime import prepare_task
from attnq.training.callbacks import EnvStepProgressBar, PeriodicCheckpoint, PeriodicEvaluation
from attnq.training.dqn_module import DQNModule


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
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="", version=version.replace("logs", "tensorboard")))
    return loggers


def check_compiler(task: TaskConfig) -> None:
    """``trainer.compile`` on CPU builds C++ kernels: say so up front, not in inductor's traceback."""
    if not task.trainer.compile:
        return
    on_cpu = task.trainer.accelerator == "cpu" or not torch.cuda.is_available()
    if on_cpu and not (os.environ.get("CXX") or any(shutil.which(name) for name in ("g++", "c++", "clang++"))):
        raise TaskFileError("trainer.compile=true: torch.compile needs a C++ compiler on CPU and found none "
                            "(CXX, g++, c++, clang++ on PATH); fix: install one (e.g. `apt install g++`) "
                            "or set trainer.compile=false")


def train(task: TaskConfig, runs_dir: Path = Path("runs"), resume: Path | None = None,
          host: PluginHost | None = None, run_dir: Path | None = None) -> TrainResult:
    """Train ``task``; with ``resume`` continue the run folder from its ``last.ckpt``."""
    checkpoint_path: Path | None = None
    start_steps = 0
    if resume is not None:
        checkpoint_path = resume / CHECKPOINT_DIR / LAST_CHECKPOINT
        if not checkpoint_path.is_file():
            raise CheckpointError(f"cannot resume {resume}: no {CHECKPOINT_DIR}/{LAST_CHECKPOINT} in it; fix: pass the run folder printed by `attnq train`")
        checkpoint = load_checkpoint_file(checkpoint_path)
        check_same_task(task_from_checkpoint(checkpoint, checkpoint_path), task, checkpoint_path)
        start_steps = int(checkpoint["attnq"]["env_steps"])
        run_dir = resume
    runtime = prepare_task(task, host)  # bad options or files fail here, before any folder exists
    check_compiler(task)
    run_dir = run_dir or new_run_dir(task, runs_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(task.to_dict(), sort_keys=False))

    pl.seed_everything(task.seed, workers=True, verbose=False)
    if task.trainer.torch_threads:
        torch.set_num_threads(task.trainer.torch_threads)
    module = DQNModule(task.to_dict(), runtime=runtime)
    callbacks: list[pl.Callback] = [PeriodicCheckpoint(run_dir / CHECKPOINT_DIR, task.trainer.checkpoint_every_env_steps)]
    if task.trainer.progress_bar:
        callbacks.append(EnvStepProgressBar())
    if task.eval.every_env_steps:
        best_path = run_dir / CHECKPOINT_DIR / BEST_CHECKPOINT if task.eval.keep_best else None
        callbacks.append(PeriodicEvaluation(task.eval.every_env_steps, task.eval.episodes_during_training,
                                            task.eval.seed_during_training, best_path))
    trainer = pl.Trainer(
        accelerator=task.trainer.accelerator, devices=1, max_epochs=-1, max_steps=module.updates_needed(),
        logger=_loggers(task, run_dir, start_steps), callbacks=callbacks, plugins=[AtomicCheckpointIO()],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        log_every_n_steps=task.trainer.log_every_updates, gradient_clip_val=task.learner.max_grad_norm,
        gradient_clip_algorithm="norm", deterministic=True, num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(module, ckpt_path=str(checkpoint_path) if checkpoint_path else None, weights_only=True)
    wall = time.perf_counter() - start
    return TrainResult(run_dir, run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT, module.env_steps - start_steps, module.episodes, wall, module.evaluation_seconds)
