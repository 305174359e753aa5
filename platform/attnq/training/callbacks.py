"""Lightning callbacks: a progress bar in env steps, periodic checkpoints, evaluation during training,
the run's state file and a clean stop on SIGINT / SIGTERM."""

from __future__ import annotations

import functools
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from tqdm.auto import tqdm

from attnq.evaluation import evaluate_policy, validation_score
from attnq.experiments.state import RunState


class EnvStepProgressBar(pl.Callback):
    """Progress in env steps with episodes, recent mean return and epsilon (not gradient steps)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.bar = tqdm(
            total=module.task.trainer.max_env_steps,
            initial=min(module.env_steps, module.task.trainer.max_env_steps),
            desc=f"train {module.task.name}",
            unit="step",
            file=sys.stderr,
            mininterval=0.5,
            dynamic_ncols=True,
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.bar is None:
            return
        recent = module.recent_mean("return")
        self.bar.set_postfix(
            episodes=module.episodes,
            ret=f"{recent:.2f}" if not math.isnan(recent) else "-",
            eps=f"{module.epsilon(module.env_steps):.2f}",
            refresh=False,
        )
        self.bar.update(min(module.env_steps, self.bar.total) - self.bar.n)  # redraws at most every mininterval

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.update(min(module.env_steps, self.bar.total) - self.bar.n)
            self.bar.close()
            self.bar = None


def next_multiple(env_steps: int, every: int) -> int:
    """The first multiple of ``every`` after ``env_steps``: periodic work keeps one grid across resumptions."""
    return (env_steps // every + 1) * every


class PeriodicCheckpoint(pl.Callback):
    """Writes ``last.ckpt`` every N env steps and at the end (atomically, via AtomicCheckpointIO)."""

    def __init__(self, directory: Path, every_env_steps: int, start_env_steps: int = 0) -> None:
        self.path = directory / "last.ckpt"
        self.every = every_env_steps
        self.next_at = every_env_steps
        self.saved_env_steps = start_env_steps  # what the checkpoint on disk holds
        self.saved_just_now = False

    def save(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.saved_env_steps == module.env_steps and self.path.is_file():
            return  # already on disk (a stop requested right after a periodic checkpoint)
        trainer.save_checkpoint(self.path, weights_only=False)  # False = keep optimizer state for resuming
        self.saved_env_steps = module.env_steps
        self.saved_just_now = True

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.next_at = next_multiple(module.env_steps, self.every)

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.saved_just_now = False
        if module.env_steps >= self.next_at:
            self.save(trainer, module)
            self.next_at = next_multiple(module.env_steps, self.every)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.save(trainer, module)


class PeriodicEvaluation(pl.Callback):
    """Greedy evaluation every N env steps on its own fixed seeds, in envs with the task's
    ``eval.validation_env_kwargs`` (a corpus's validation part); logs ``eval/<metric>``, with
    ``eval/exact_return`` where the domain computes one.

    With ``best_path`` it also keeps the checkpoint with the best :func:`validation_score` so far
    (model selection on validation episodes, never on the final evaluation's).
    """

    def __init__(
        self,
        every_env_steps: int,
        episodes: int,
        seed: int,
        best_path: Path | None = None,
        listeners: tuple[Callable[[int, dict[str, float], float], None], ...] = (),
    ) -> None:
        self.every, self.episodes, self.seed = every_env_steps, episodes, seed
        self.best_path = best_path
        self.next_at = every_env_steps
        # called after each evaluation (sweeps) with (env steps, mean metrics, best score of the run so far)
        self.listeners = listeners

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # a resumed run evaluates on the same env-step grid as one that never stopped
        self.next_at = next_multiple(module.env_steps, self.every)

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if module.env_steps < self.next_at:
            return
        self.next_at = next_multiple(module.env_steps, self.every)
        started = time.perf_counter()
        network = module.evaluation_network
        was_training = network.training
        network.eval()
        policy = functools.partial(module.greedy_actions, network=network)
        result = evaluate_policy(
            module.runtime,
            policy,
            self.episodes,
            self.seed,
            env_kwargs=module.runtime.task.eval.validation_env_kwargs,
        )
        means = result.means()
        if module.runtime.domain.exact_return is not None:
            means["exact_return"] = module.runtime.domain.exact_return(module.runtime.context, policy)
        network.train(was_training)
        # Straight to the loggers, one row per evaluation: values given to module.log from a callback
        # hook would be written again on every later logging step, as if evaluated there.
        row = {f"eval/{name}": value for name, value in means.items()} | {"train/env_steps": float(module.env_steps)}
        for logger in trainer.loggers:
            logger.log_metrics(row, step=trainer.global_step)
        score = validation_score(means)
        if score > module.best_eval_return:
            module.best_eval_return = score
            if self.best_path is not None:
                trainer.save_checkpoint(self.best_path, weights_only=False)
        module.evaluation_seconds += time.perf_counter() - started
        for listener in self.listeners:
            listener(module.env_steps, means, module.best_eval_return)


class RunStateWriter(pl.Callback):
    """Keeps ``RUN/state.json`` current: at start, after every checkpoint, every few seconds, at the end.

    Put it after :class:`PeriodicCheckpoint` so that a checkpoint written in a step is in the state
    written in the same step.
    """

    def __init__(
        self, run_dir: Path, checkpoints: PeriodicCheckpoint, learning_hash: str, heartbeat_seconds: float = 5.0
    ) -> None:
        self.run_dir, self.checkpoints, self.heartbeat = run_dir, checkpoints, heartbeat_seconds
        self.state = RunState(status="running", learning_hash=learning_hash)
        self.last_written = 0.0
        self.train_start_steps, self.train_started = 0, 0.0

    def write(self, module: pl.LightningModule, status: str | None = None) -> None:
        state = self.state
        state.status = status or state.status
        state.env_steps = self.checkpoints.saved_env_steps
        state.live_env_steps = module.env_steps
        state.max_env_steps = module.task.trainer.max_env_steps
        state.wall_seconds = module.wall_seconds()
        # training speed of this fit: after the warm-up, without the evaluations during training
        seconds = time.perf_counter() - self.train_started - module.evaluation_seconds
        if self.train_started and seconds > 0 and module.env_steps > self.train_start_steps:
            state.env_steps_per_second = (module.env_steps - self.train_start_steps) / seconds
        state.write(self.run_dir)
        self.last_written = time.perf_counter()

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.state.fit_started = time.time()
        self.write(module, "running")

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.train_start_steps, self.train_started = module.env_steps, time.perf_counter()
        self.write(module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.checkpoints.saved_just_now or time.perf_counter() - self.last_written >= self.heartbeat:
            self.write(module)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        done = self.checkpoints.saved_env_steps >= module.task.trainer.max_env_steps
        self.write(module, "finished" if done else "interrupted")

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        interrupted = isinstance(exception, (KeyboardInterrupt, SystemExit))
        self.state.error = None if interrupted else f"{type(exception).__name__}: {exception}"[:500]
        self.write(module, "interrupted" if interrupted else "failed")


class GracefulStop(pl.Callback):
    """SIGINT and SIGTERM end training cleanly: the next update boundary writes ``last.ckpt`` and
    stops the fit, so nothing since the last periodic checkpoint is lost.

    Lightning installs its own SIGTERM handler when the fit starts (it exits with status 0 and saves
    nothing), so ours is installed again once training starts. A second signal stops at once.
    """

    def __init__(self, checkpoints: PeriodicCheckpoint) -> None:
        self.checkpoints = checkpoints
        self.signal: int | None = None
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread (a Ray worker's task thread stops by its own means)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self.previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # asked twice: stop now, keep the last periodic checkpoint
            self.restore()
            raise KeyboardInterrupt
        self.signal = signum

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.install()

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.signal is not None and not trainer.should_stop:
            self.checkpoints.save(trainer, module)
            trainer.should_stop = True
