"""Reading a runs folder back: evaluated runs, baselines and learning curves, grouped by task.

A report's numbers come from here only, so ``attnq report --from RUNS`` redraws a report from
saved runs (committed or copied from a cluster) without training or evaluating anything.
"""

from __future__ import annotations

import csv
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from attnq.checkpoints import CONFIG_FILE, atomic_write_text
from attnq.config import TaskConfig, validate_task
from attnq.errors import AttnqError
from attnq.experiments.jobs import BASELINES_DIR, EVALUATION_FILE, LEGACY_BASELINES_FILE
from attnq.experiments.state import read_state

COMMAND_FILE = "report-command.txt"
METRICS_GLOB = "logs*/metrics.csv"  # one folder per fit; see training.run.log_version


@dataclass
class RunRecord:
    """One trained agent: where it is, how long it trained, its evaluation means and speed."""

    torso: str
    seed: int
    run_dir: Path
    env_steps: int
    wall_seconds: float
    metrics: dict[str, float]
    return_interval: list[float] | None = None  # over the evaluation episodes
    train_env_steps_per_second: float | None = None
    random_env_steps_per_second: float | None = None
    train_seconds: float | None = None  # the whole run's training wall time (its state file)


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


def write_training_command(runs_dir: Path, command: str) -> None:
    """Remember the command that trained a report's runs, for reports redrawn from them later."""
    atomic_write_text(runs_dir / COMMAND_FILE, command + "\n")


def read_training_command(runs_dir: Path) -> str | None:
    path = runs_dir / COMMAND_FILE
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def recorded_profile(runs_dir: Path) -> str | None:
    """The ``--profile`` of the command that trained a runs folder, if it recorded one."""
    command = read_training_command(runs_dir)
    words = shlex.split(command.splitlines()[0]) if command else []
    for word, after in zip(words, [*words[1:], None]):
        if word == "--profile":
            return after
        if word.startswith("--profile="):
            return word.split("=", 1)[1]
    return None


def load_records(runs_dir: Path, tasks: set[str] | None = None, run_dirs: set[Path] | None = None) -> list[TaskRecord]:
    """Read a runs folder back: evaluated runs and baselines, grouped by task (only ``tasks`` if given,
    only the runs whose resolved folders are in ``run_dirs`` if given)."""
    if not runs_dir.is_dir():
        raise AttnqError(
            f"runs folder {runs_dir} does not exist; fix: pass the --runs-dir an earlier `attnq report` used"
        )
    records: dict[str, TaskRecord] = {}
    for evaluation_path in sorted(runs_dir.glob(f"*/*/{EVALUATION_FILE}")):
        run_dir = evaluation_path.parent
        if run_dirs is not None and run_dir.resolve() not in run_dirs:
            continue
        task = validate_task(
            yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")), str(run_dir / CONFIG_FILE)
        )
        if tasks is not None and task.name not in tasks:
            continue
        saved = json.loads(evaluation_path.read_text(encoding="utf-8"))
        state = read_state(run_dir)
        # the episodes it was evaluated on, which a report may choose apart from the run's own settings
        evaluated = {
            "episodes": saved.get("episodes", task.eval.episodes),
            "seed": saved.get("eval_seed", task.eval.seed),
        }
        task = task.model_copy(update={"eval": task.eval.model_copy(update=evaluated)})
        record = records.setdefault(task.name, TaskRecord(task))
        record.runs.append(
            RunRecord(
                task.model.torso,
                task.seed,
                run_dir,
                int(saved["env_steps"]),
                float(saved["wall_seconds"]),
                saved["mean"],
                saved.get("return_interval"),
                saved.get("train_env_steps_per_second"),
                saved.get("random_env_steps_per_second"),
                state.wall_seconds if state is not None else None,
            )
        )
    for name, record in records.items():
        legacy = runs_dir / name / LEGACY_BASELINES_FILE
        if legacy.is_file():
            record.baselines = json.loads(legacy.read_text(encoding="utf-8"))["policies"]
        saved = [
            json.loads(path.read_text(encoding="utf-8")) for path in (runs_dir / name / BASELINES_DIR).glob("*.json")
        ]
        for baseline in sorted(saved, key=lambda b: b.get("order", 0)):  # the domain's own order
            record.baselines[baseline["policy"]] = baseline["metrics"]
    if not records:
        raise AttnqError(
            f"{runs_dir} holds no evaluated runs ({'*/*/' + EVALUATION_FILE}); fix: run `attnq report` to "
            "train them first"
        )
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
                value, steps, wall = (
                    row.get(f"rollout/{metric}"),
                    row.get("train/env_steps"),
                    row.get("train/wall_seconds"),
                )
                if value and steps and wall:
                    points.append((float(steps), float(wall), float(value)))
    points.sort()
    return {"env_steps": [p[0] for p in points], "wall_seconds": [p[1] for p in points], metric: [p[2] for p in points]}
