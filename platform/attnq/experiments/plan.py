"""What an experiment covers: tasks (each with overrides) x torsos x seeds, turned into jobs.

Profiles, whose tasks are those whose task files declare them (``profiles:``): ``quick`` runs
every domain at smoke budgets (two seeds; its numbers show the pipeline, not converged agents);
``full`` uses each task file's own budget and three seeds (hours on a CPU, less on many cores with
``--executor ray``) and keeps its runs in the report's folder, so that the finished ones are
committed and reused by the next machine that resumes the report; ``live`` is the README's demo's
training from scratch, and a task's ``demo`` overrides say how the demo evaluates its committed
full-budget agents (see :mod:`attnq.experiments.demo`).

:func:`plan_jobs` resolves every task, checks it against its domain and any saved run it would
reuse, and only then returns jobs: a bad task or a stale run is refused before anything trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from attnq.catalog import available_tasks, load_named_task
from attnq.checkpoints import CONFIG_FILE, read_run_config
from attnq.config import TaskConfig, apply_overrides, validate_task
from attnq.errors import AttnqError
from attnq.experiments.jobs import BaselineJob, Job, RunJob
from attnq.experiments.reuse import refusal
from attnq.registry import PluginHost
from attnq.runtime import prepare_task


class ReportTask(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(description="task name or path to a task file")
    overrides: tuple[str, ...] = Field((), description="--set style overrides, e.g. trainer.max_env_steps=5000")


class ReportPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tasks: tuple[ReportTask, ...]
    torsos: tuple[str, ...] = ("transformer", "mlp")
    seeds: tuple[int, ...] = (0, 1, 2)
    # runs go in the report's folder (OUT/runs) to be committed with it: evaluations, curves and
    # exported policies; their checkpoints and replay buffers are ignored by git
    keeps_runs: bool = False
    # a report beside this one (docs/reports/NAME) whose full-budget figures its index shows
    reference: str | None = None

    def with_choices(
        self, tasks: list[str] | None, seeds: list[int] | None, torsos: list[str] | None, overrides: list[str] | None
    ) -> ReportPlan:
        """The plan narrowed to the given tasks/seeds/torsos, with extra overrides on every task."""
        chosen = [t for t in self.tasks if not tasks or t.task in tasks]
        chosen += [ReportTask(task=t) for t in (tasks or []) if t not in {c.task for c in chosen}]
        extra = tuple(overrides or ())
        return ReportPlan(
            name=self.name,
            tasks=tuple(ReportTask(task=t.task, overrides=t.overrides + extra) for t in chosen),
            torsos=tuple(torsos or self.torsos),
            seeds=tuple(seeds if seeds is not None else self.seeds),
            keeps_runs=self.keeps_runs,
            reference=self.reference,
        )


_QUIET = ("trainer.progress_bar=false",)

# What each profile is, apart from its tasks, which are those whose task files declare it
# (``profiles: {quick: [overrides], full: []}``), so that a plugin's task joins without the core.
PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {"seeds": (0, 1), "reference": "full"},
    "full": {"seeds": (0, 1, 2), "keeps_runs": True},
    # the demo's training from scratch, beside the committed full-budget agents (experiments.demo)
    "live": {"seeds": (0, 1), "reference": "full"},
}


def report_profile(name: str, host: PluginHost | None) -> ReportPlan:
    """The plan of profile ``name``: every task in the task folders that declares it, with the
    overrides it declares for it."""
    tasks = []
    for task_name, (_, path) in available_tasks(host).items():
        try:
            declared = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("profiles") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            continue  # an unreadable task file is reported when it is used by name
        if isinstance(declared, dict) and name in declared:
            tasks.append(ReportTask(task=task_name, overrides=_QUIET + tuple(declared[name] or ())))
    return ReportPlan(name=name, tasks=tuple(tasks), **PROFILE_SETTINGS.get(name, {}))


def run_folder(runs_dir: Path, task: TaskConfig) -> Path:
    """``RUNS/TASK/TORSO-seedSEED``: one folder per run, whatever executor trains it."""
    return runs_dir / task.name / f"{task.model.torso}-seed{task.seed}"


def check_reusable(run_dir: Path, task: TaskConfig) -> None:
    """Refuse to reuse a saved run that was trained with other settings than the task now asks for.

    Otherwise a changed task file (or changed defaults) would be reported with the old runs' numbers.
    """
    if not (run_dir / CONFIG_FILE).is_file():
        return
    stored = validate_task(read_run_config(run_dir), str(run_dir / CONFIG_FILE))
    found = refusal(stored, task)
    if found is not None:
        path, was, now = found
        raise AttnqError(
            f"{run_dir} was trained with {path} = {was!r}, but the task now asks for {now!r}; "
            f"fix: delete {run_dir} to train it again with the current task, or pass another --runs-dir"
        )


def resolve_tasks(plan: ReportPlan, host: PluginHost | None) -> list[tuple[TaskConfig, list[str]]]:
    """Each task of the plan, loaded with its overrides and checked against its domain once, with
    the names of its domain's baselines."""
    tasks = []
    for entry in plan.tasks:
        task = load_named_task(entry.task, host, list(entry.overrides))
        runtime = prepare_task(task, host)  # bad options, env ids or encoders fail here
        runtime.context.probe_env.close()
        tasks.append((task, runtime.baseline_names()))
    return tasks


def plan_jobs(
    plan: ReportPlan,
    runs_dir: Path,
    host: PluginHost | None = None,
    measure_speed: bool = False,
    baselines: bool = True,
) -> list[Job]:
    """Every run of the plan (task x torso x seed), then each task's baselines, as jobs."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise AttnqError(f"runs folder {runs_dir} is a file; fix: pass a folder to --runs-dir")
    jobs: list[Job] = []
    tasks = resolve_tasks(plan, host)
    for base, _ in tasks:
        for torso in plan.torsos:
            for seed in plan.seeds:
                task = validate_task(
                    apply_overrides(base.to_dict(), [f"seed={seed}", f"model.torso={torso}"]), base.name
                )
                run_dir = run_folder(runs_dir, task)
                check_reusable(run_dir, task)
                jobs.append(RunJob(task.to_dict(), str(run_dir), measure_speed))
    if baselines:
        jobs += [
            BaselineJob(base.to_dict(), str(runs_dir / base.name), policy, order)
            for base, names in tasks
            for order, policy in enumerate(names)
        ]
    return jobs
