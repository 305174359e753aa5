"""Runs behind a report: train what is missing, evaluate what is stale, read back what is saved.

A report's runs live in one folder, one run per task x torso x seed at ``RUNS/TASK/TORSO-seedSEED``,
with the baselines' figures in ``RUNS/TASK/baselines.json``. Every step is skipped when its result
is already on disk, so an interrupted ``attnq report`` picks up where it stopped (a killed training
run resumes from its last checkpoint), and ``attnq report --from RUNS`` redraws without training.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from attnq.agent import load_agent
from attnq.catalog import find_task
from attnq.bench import evaluated_checkpoint
from attnq.checkpoints import (BEST_CHECKPOINT, CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT, atomic_write_text,
                               is_within, load_checkpoint_file, read_run_config, task_differences)
from attnq.config import TaskConfig, apply_overrides, load_task, validate_task
from attnq.errors import AttnqError
from attnq.evaluation import policy_metrics
from attnq.registry import PluginHost
from attnq.reporting.plan import ReportPlan
from attnq.runtime import prepare_task
from attnq.training.run import train

EVALUATION_FILE = "evaluation.json"
COMMAND_FILE = "report-command.txt"
BASELINES_FILE = "baselines.json"
METRICS_GLOB = "logs*/metrics.csv"  # one folder per fit; see training.run.log_version
# A saved run may be reused when only these differ: they do not change what was trained (a larger
# budget is reached by resuming; the final evaluation is redone when its episodes change; a compiled
# TD loss or another torch thread count computes the same update to float rounding, only at another speed).
REUSABLE_DESPITE = ("description", "anchors", "trainer.progress_bar", "trainer.tensorboard", "trainer.compile",
                    "trainer.torch_threads", "eval.episodes", "eval.seed")

Say = Callable[[str], None]


@dataclass
class RunRecord:
    """One trained agent: where it is, how long it trained, and its evaluation means."""

    torso: str
    seed: int
    run_dir: Path
    env_steps: int
    wall_seconds: float
    metrics: dict[str, float]


@dataclass
class TaskRecord:
    """Everything a report says about one task."""

    task: TaskConfig
    runs: list[RunRecord] = field(default_factory=list)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)

    def torsos(self) -> list[str]:
        return sorted({run.torso for run in self.runs}, key=lambda t: (t != "transformer", t))

    def runs_of(self, torso: str) -> list[RunRecord]:
        return sorted((r for r in self.runs if r.torso == torso), key=lambda r: r.seed)


def run_folder(runs_dir: Path, task: TaskConfig) -> Path:
    return runs_dir / task.name / f"{task.model.torso}-seed{task.seed}"


def _trained_steps(run_dir: Path) -> int:
    checkpoint = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if not checkpoint.is_file():
        return -1
    return int(load_checkpoint_file(checkpoint).get("attnq", {}).get("env_steps", 0))


def check_reusable(run_dir: Path, task: TaskConfig) -> None:
    """Refuse to reuse a saved run that was trained with other settings than the report now asks for.

    Otherwise a changed task file (or changed defaults) would be reported with the old runs' numbers.
    """
    stored = validate_task(read_run_config(run_dir), str(run_dir / CONFIG_FILE))
    for path, was, now in task_differences(stored.to_dict(), task.to_dict()):
        if any(is_within(path, field) for field in REUSABLE_DESPITE):
            continue
        if path == "trainer.max_env_steps" and now >= was:
            continue  # resumed up to the larger budget
        raise AttnqError(f"{run_dir} was trained with {path} = {was!r}, but the report's task asks for {now!r}; "
                         f"fix: delete {run_dir} to train it again with the current task, or pass another --runs-dir")


def ensure_trained(task: TaskConfig, run_dir: Path, host: PluginHost | None, say: Say) -> int:
    """Train or resume the run up to the task's budget; returns its env steps."""
    if (run_dir / CONFIG_FILE).is_file():
        check_reusable(run_dir, task)
    steps = _trained_steps(run_dir)
    if steps >= task.trainer.max_env_steps:
        return steps
    if steps >= 0:
        say(f"resuming {run_dir} from {steps} env steps")
        return train(task, resume=run_dir, host=host).env_steps
    say(f"training {run_dir}")
    return train(task, run_dir=run_dir, host=host).env_steps


def ensure_evaluated(run_dir: Path, task: TaskConfig, host: PluginHost | None, say: Say, steps: int | None = None) -> dict:
    """Evaluate the checkpoint ``attnq bench`` would (the best validation one under
    ``eval.keep_best``, the last one otherwise) on the task's fixed seeds, unless that was done
    already for a run trained this far (``steps``: the run's env steps when the caller knows them)."""
    path = run_dir / EVALUATION_FILE
    steps = _trained_steps(run_dir) if steps is None else steps
    checkpoint = evaluated_checkpoint(run_dir, task)
    which = "best" if checkpoint.endswith(BEST_CHECKPOINT) else "last"
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        same_episodes = (saved.get("episodes"), saved.get("eval_seed")) == (task.eval.episodes, task.eval.seed)
        if same_episodes and saved.get("trained_env_steps", saved.get("env_steps")) == steps and saved.get("checkpoint", "last") == which:
            return saved
    say(f"evaluating {run_dir} ({which} checkpoint)")
    agent = load_agent(checkpoint, host)
    # the report's episodes, which may differ from those the run was trained with (REUSABLE_DESPITE)
    evaluation, metrics = policy_metrics(agent.runtime, agent, task.eval.episodes, task.eval.seed)
    saved = {"checkpoint": which, "trained_env_steps": steps, "env_steps": agent.env_steps, "wall_seconds": agent.wall_seconds,
             "episodes": len(evaluation.episodes), "eval_seed": task.eval.seed,
             "mean": metrics, "std": evaluation.stds()}
    atomic_write_text(path, json.dumps(saved, indent=1))
    return saved


def ensure_baselines(task: TaskConfig, task_dir: Path, host: PluginHost | None, say: Say) -> dict:
    """Every baseline of the task's domain, evaluated on the same fixed seeds as the agents."""
    path = task_dir / BASELINES_FILE
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if (saved.get("episodes"), saved.get("eval_seed")) == (task.eval.episodes, task.eval.seed):
            return saved
    runtime = prepare_task(task, host)
    policies: dict[str, dict[str, float]] = {}
    for name in runtime.baseline_names():
        say(f"evaluating baseline {name} on {task.name}")
        policy = runtime.baseline(name, task.seed)
        # a random policy is not deterministic, so it has no exact return
        _, policies[name] = policy_metrics(runtime, policy, task.eval.episodes, task.eval.seed, exact=name != "random")
    saved = {"episodes": task.eval.episodes, "eval_seed": task.eval.seed, "policies": policies}
    task_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(saved, indent=1))
    return saved


def collect(plan: ReportPlan, runs_dir: Path, host: PluginHost | None = None, say: Say = print) -> list[TaskRecord]:
    """Train, evaluate and baseline everything the plan names (skipping what is on disk), then read it back."""
    for entry in plan.tasks:
        base = load_task(find_task(entry.task, host), list(entry.overrides))
        for torso in plan.torsos:
            for seed in plan.seeds:
                task = validate_task(apply_overrides(base.to_dict(), [f"seed={seed}", f"model.torso={torso}"]), base.name)
                run_dir = run_folder(runs_dir, task)
                ensure_evaluated(run_dir, task, host, say, ensure_trained(task, run_dir, host, say))
        ensure_baselines(base, runs_dir / base.name, host, say)
    return load_records(runs_dir)


def write_training_command(runs_dir: Path, command: str) -> None:
    """Remember the command that trained a report's runs, for reports redrawn from them later."""
    atomic_write_text(runs_dir / COMMAND_FILE, command + "\n")


def read_training_command(runs_dir: Path) -> str | None:
    path = runs_dir / COMMAND_FILE
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def load_records(runs_dir: Path) -> list[TaskRecord]:
    """Read a report's runs folder back: evaluated runs and baselines, grouped by task."""
    if not runs_dir.is_dir():
        raise AttnqError(f"runs folder {runs_dir} does not exist; fix: pass the --runs-dir an earlier `attnq report` used")
    records: dict[str, TaskRecord] = {}
    for evaluation_path in sorted(runs_dir.glob(f"*/*/{EVALUATION_FILE}")):
        run_dir = evaluation_path.parent
        task = validate_task(yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")), str(run_dir / CONFIG_FILE))
        saved = json.loads(evaluation_path.read_text(encoding="utf-8"))
        record = records.setdefault(task.name, TaskRecord(task))
        record.runs.append(RunRecord(task.model.torso, task.seed, run_dir, int(saved["env_steps"]),
                                     float(saved["wall_seconds"]), saved["mean"]))
    for name, record in records.items():
        baselines = runs_dir / name / BASELINES_FILE
        if baselines.is_file():
            record.baselines = json.loads(baselines.read_text(encoding="utf-8"))["policies"]
    if not records:
        raise AttnqError(f"{runs_dir} holds no evaluated runs ({'*/*/' + EVALUATION_FILE}); fix: run `attnq report` to train them first")
    return [records[name] for name in sorted(records)]


def learning_curve(run_dir: Path, metric: str = "return") -> dict[str, list[float]]:
    """``env_steps``, ``wall_seconds`` and the rollout metric at each logged point of a run.

    A resumed run has one log folder per fit (``logs``, ``logs-resumed-N``); their rows are merged
    in env-step order.
    """
    points: list[tuple[float, float, float]] = []
    for path in run_dir.glob(METRICS_GLOB):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                value, steps, wall = row.get(f"rollout/{metric}"), row.get("train/env_steps"), row.get("train/wall_seconds")
                if value and steps and wall:
                    points.append((float(steps), float(wall), float(value)))
    points.sort()
    return {"env_steps": [p[0] for p in points], "wall_seconds": [p[1] for p in points], metric: [p[2] for p in points]}
