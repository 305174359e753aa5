"""The units of work an executor runs: train one run to its budget and evaluate it; evaluate baselines.

Each job is idempotent and reads the runs folder to decide what is left: a finished run is only
evaluated (or nothing at all), a run with a checkpoint resumes from it, and a job retried after
its worker died (``--executor ray``) resumes instead of training again. Jobs are small picklable
records so that a Ray worker on another node can run them; each worker loads the plugins once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnq.agent import load_agent
from attnq.checkpoints import (
    POLICY_CHECKPOINT,
    atomic_write_text,
    evaluated_checkpoint,
    export_policy,
)
from attnq.config import TaskConfig, apply_overrides, validate_task
from attnq.errors import AttnqError
from attnq.evaluation import EvaluationResult, policy_metrics
from attnq.experiments.state import WHERE_ENV_VAR, policy_only, read_state, trained_steps
from attnq.registry import PluginHost, load_plugins
from attnq.runtime import TaskRuntime, prepare_task
from attnq.statistics import bootstrap_interval
from attnq.training.run import train

EVALUATION_FILE = "evaluation.json"
BASELINES_DIR = "baselines"  # RUNS/TASK/baselines/POLICY.json, one file per baseline policy
LEGACY_BASELINES_FILE = "baselines.json"  # every policy in one file, as written before
RANDOM_RATE_STEPS = 1000  # random-action env steps timed before and after training (speed figures)

Say = Callable[[str], None]
_HOST: PluginHost | None = None  # one plugin load per worker process


def worker_host() -> PluginHost:
    global _HOST
    if _HOST is None:
        _HOST = load_plugins()
    return _HOST


@dataclass(frozen=True)
class Outcome:
    """What a job did, for the progress view and the executor's summary."""

    label: str
    action: str  # "trained", "resumed", "evaluated", "reused", "baselines"
    env_steps: int = 0
    where: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class RunJob:
    """Train one (task, torso, seed) to its budget in ``run_dir`` and evaluate it.

    :param task: the resolved task (``TaskConfig.to_dict()``), seed and torso included
    :param run_dir: the run's folder under the runs folder
    :param measure_speed: also time the task's vector env under random actions (``attnq bench``)
    """

    task: dict[str, Any]
    run_dir: str
    measure_speed: bool = False

    @property
    def label(self) -> str:
        return f"{self.task['name']}/{self.task['model']['torso']}-seed{self.task['seed']}"

    @property
    def max_env_steps(self) -> int:
        return int(self.task["trainer"]["max_env_steps"])

    def execute(self, host: PluginHost | None = None, say: Say = print, device: str | None = None) -> Outcome:
        """:param device: "cpu" or "gpu" to override the task's ``trainer.accelerator`` (an executor's placement)"""
        started = time.perf_counter()
        host = host or worker_host()
        task = validate_task(self.task, self.label)
        if device is not None:  # where to train is a speed setting: the run stays reusable
            task = validate_task(apply_overrides(task.to_dict(), [f"trainer.accelerator={device}"]), self.label)
        run_dir = Path(self.run_dir)
        runtime = prepare_task(task, host)
        try:
            action, steps = ensure_trained(task, run_dir, runtime, say)
            rates = measure_random_rate(runtime) if self.measure_speed and not _has_speed(run_dir) else None
            ensure_evaluated(run_dir, task, runtime, say, steps, device, rates)
        finally:
            runtime.context.probe_env.close()
        where = os.environ.get(WHERE_ENV_VAR, "")
        return Outcome(self.label, action, steps, where, time.perf_counter() - started)


@dataclass(frozen=True)
class BaselineJob:
    """Evaluate one baseline policy of a task's domain on the agents' episodes (one job per policy,
    so that a task's baselines spread over the executor's slots like its runs)."""

    task: dict[str, Any]
    task_dir: str
    policy: str
    order: int = 0  # the policy's place among its domain's baselines (reports keep that order)

    @property
    def label(self) -> str:
        return f"{self.task['name']}/baseline-{self.policy}"

    def execute(self, host: PluginHost | None = None, say: Say = print, device: str | None = None) -> Outcome:
        started = time.perf_counter()
        task = validate_task(self.task, self.label)
        ensure_baseline(task, Path(self.task_dir), self.policy, host or worker_host(), say, self.order)
        return Outcome(self.label, "baseline", 0, os.environ.get(WHERE_ENV_VAR, ""), time.perf_counter() - started)


Job = RunJob | BaselineJob


def ensure_trained(task: TaskConfig, run_dir: Path, runtime: TaskRuntime, say: Say) -> tuple[str, int]:
    """Train or resume the run up to the task's budget; returns what was done and its env steps."""
    steps = trained_steps(run_dir)
    if steps >= task.trainer.max_env_steps:
        return "reused", steps
    if steps >= 0 and policy_only(run_dir):
        raise AttnqError(
            f"{run_dir} holds only its exported {POLICY_CHECKPOINT} ({steps:,} env steps, no replay buffer), so it "
            f"cannot be trained on to {task.trainer.max_env_steps:,}; fix: delete {run_dir} to train it again "
            "from the start, or keep trainer.max_env_steps at its budget"
        )
    if steps >= 0:
        say(f"resuming {run_dir} from {steps:,} env steps")
        return "resumed", steps + train(task, resume=run_dir, runtime=runtime).env_steps
    say(f"training {run_dir}")
    return "trained", train(task, run_dir=run_dir, runtime=runtime).env_steps


def episode_interval(evaluation: EvaluationResult) -> list[float]:
    """95 % percentile-bootstrap interval of the mean return over the evaluation episodes."""
    estimate = bootstrap_interval([episode["return"] for episode in evaluation.episodes], statistic=np.mean)
    return [estimate.low, estimate.high]


def ensure_evaluated(
    run_dir: Path,
    task: TaskConfig,
    runtime: TaskRuntime | None,
    say: Say,
    steps: int | None = None,
    device: str | None = None,
    rates: dict[str, float] | None = None,
) -> dict:
    """Evaluate the run's checkpoint (see :func:`evaluated_checkpoint`) on the task's fixed seeds,
    unless that was done already for a run trained this far; ``rates`` adds speed figures.

    The evaluated network is exported to ``RUN/policy.ckpt`` (:func:`~attnq.checkpoints.export_policy`),
    so that a report's runs can be committed without their checkpoints and still be redrawn and loaded.
    """
    path = run_dir / EVALUATION_FILE
    steps = trained_steps(run_dir) if steps is None else steps
    checkpoint, which = evaluated_checkpoint(run_dir, task.eval.keep_best)
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        same_episodes = (saved.get("episodes"), saved.get("eval_seed")) == (task.eval.episodes, task.eval.seed)
        if (
            same_episodes
            and saved.get("trained_env_steps", saved.get("env_steps")) == steps
            and which in (saved.get("checkpoint", "last"), "policy")
        ):
            if rates:
                saved.update(rates)
                atomic_write_text(path, json.dumps(saved, indent=1))
            if which != "policy" and not (run_dir / POLICY_CHECKPOINT).is_file():
                export_policy(checkpoint, run_dir / POLICY_CHECKPOINT)
            return saved
    say(f"evaluating {run_dir} ({which} checkpoint)")
    agent = load_agent(str(checkpoint), runtime=runtime, device={"gpu": "cuda", "cpu": "cpu"}.get(device or "", None))
    # the task's episodes, which may differ from those the run was trained with (an `evaluates` field)
    evaluation, metrics = policy_metrics(agent.runtime, agent, task.eval.episodes, task.eval.seed)
    state = read_state(run_dir)
    saved = {
        "checkpoint": which,
        "trained_env_steps": steps,
        "env_steps": agent.env_steps,
        "wall_seconds": agent.wall_seconds,
        "train_env_steps_per_second": state.env_steps_per_second if state else None,
        "episodes": len(evaluation.episodes),
        "eval_seed": task.eval.seed,
        "mean": metrics,
        "std": evaluation.stds(),
        "return_interval": episode_interval(evaluation),
        **(rates or {}),
    }
    if which != "policy":  # the policy first: an evaluation on disk promises a policy beside it
        export_policy(checkpoint, run_dir / POLICY_CHECKPOINT)
    atomic_write_text(path, json.dumps(saved, indent=1))
    return saved


def _has_speed(run_dir: Path) -> bool:
    path = run_dir / EVALUATION_FILE
    return path.is_file() and "random_env_steps_per_second" in json.loads(path.read_text(encoding="utf-8"))


def measure_random_rate(runtime: TaskRuntime, env_steps: int = RANDOM_RATE_STEPS) -> dict[str, float]:
    """Env steps/s of the task's own vector env under random actions (resets included): the
    simulator's ceiling, beside which a run's training env steps/s is read."""
    vector_env = runtime.make_vector_env()
    policy = runtime.baseline("random", runtime.task.seed)
    try:
        observations, _ = vector_env.reset(seed=runtime.task.seed)
        vector_steps = max(1, env_steps // vector_env.num_envs)
        start = time.perf_counter()
        for _ in range(vector_steps):
            observations, *_ = vector_env.step(policy(observations))
        return {"random_env_steps_per_second": vector_steps * vector_env.num_envs / (time.perf_counter() - start)}
    finally:
        vector_env.close()


def baseline_path(task_dir: Path, policy: str) -> Path:
    return task_dir / BASELINES_DIR / f"{policy}.json"


def ensure_baseline(
    task: TaskConfig, task_dir: Path, policy: str, host: PluginHost | None, say: Say, order: int = 0
) -> dict:
    """One baseline of the task's domain, evaluated on the same fixed seeds as the agents."""
    path = baseline_path(task_dir, policy)
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if (saved.get("episodes"), saved.get("eval_seed")) == (task.eval.episodes, task.eval.seed):
            return saved
    runtime = prepare_task(task, host)
    try:
        say(f"evaluating baseline {policy} on {task.name}")
        # a random policy is not deterministic, so it has no exact return
        _, metrics = policy_metrics(
            runtime, runtime.baseline(policy, task.seed), task.eval.episodes, task.eval.seed, exact=policy != "random"
        )
    finally:
        runtime.context.probe_env.close()
    saved = {
        "episodes": task.eval.episodes,
        "eval_seed": task.eval.seed,
        "policy": policy,
        "order": order,
        "metrics": metrics,
    }
    atomic_write_text(path, json.dumps(saved, indent=1))
    return saved
