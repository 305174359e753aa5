"""Lightning callbacks: a progress bar in env steps, periodic checkpoints, evaluation during training."""

from __future__ import annotations

import functools
import math
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from tqdm.auto import tqdm

from attnq.evaluation import evaluate_policy


class EnvStepProgressBar(pl.Callback):
    """Progress in env steps with episodes, recent mean return and epsilon (not gradient steps)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.bar = tqdm(total=module.task.trainer.max_env_steps, initial=min(module.env_steps, module.task.trainer.max_env_steps),
                        desc=f"train {module.task.name}", unit="step", file=sys.stderr, mininterval=0.5, dynamic_ncols=True)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.bar is None:
            return
        recent = module.recent_mean("return")
        self.bar.set_postfix(episodes=module.episodes, ret=f"{recent:.2f}" if not math.isnan(recent) else "-",
                             eps=f"{module.epsilon(module.env_steps):.2f}", refresh=False)
        self.bar.update(min(module.env_steps, self.bar.total) - self.bar.n)  # redraws at most every mininterval

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.update(min(module.env_steps, self.bar.total) - self.bar.n)
            self.bar.close()
            self.bar = None


class PeriodicCheckpoint(pl.Callback):
    """Writes ``last.ckpt`` every N env steps and at the end (atomically, via AtomicCheckpointIO)."""

    def __init__(self, directory: Path, every_env_steps: int) -> None:
        self.path = directory / "last.ckpt"
        self.every = every_env_steps
        self.next_at = every_env_steps

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.next_at = (module.env_steps // self.every + 1) * self.every

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if module.env_steps >= self.next_at:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.next_at = (module.env_steps // self.every + 1) * self.every

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # False = keep optimizer state for resuming


class PeriodicEvaluation(pl.Callback):
    """Greedy evaluation every N env steps on its own fixed seeds; logs ``eval/<metric>``.

    With ``best_path`` it also keeps the checkpoint with the best mean return so far (model
    selection on validation episodes, never on the final evaluation's).
    """

    def __init__(self, every_env_steps: int, episodes: int, seed: int, best_path: Path | None = None) -> None:
        self.every, self.episodes, self.seed = every_env_steps, episodes, seed
        self.best_path = best_path
        self.next_at = every_env_steps

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if module.env_steps < self.next_at:
            return
        self.next_at = (module.env_steps // self.every + 1) * self.every
        started = time.perf_counter()
        network = module.evaluation_network
        was_training = network.training
        network.eval()
        result = evaluate_policy(module.runtime, functools.partial(module.greedy_actions, network=network),
                                 self.episodes, self.seed)
        network.train(was_training)
        means = result.means()
        # Straight to the loggers, one row per evaluation: values given to module.log from a callback
        # hook would be written again on every later logging step, as if evaluated there.
        row = {f"eval/{name}": value for name, value in means.items()} | {"train/env_steps": float(module.env_steps)}
        for logger in trainer.loggers:
            logger.log_metrics(row, step=trainer.global_step)
        if self.best_path is not None and means["return"] > module.best_eval_return:
            module.best_eval_return = means["return"]
            trainer.save_checkpoint(self.best_path, weights_only=False)
        module.evaluation_seconds += time.perf_counter() - started
