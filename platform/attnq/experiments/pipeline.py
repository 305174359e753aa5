"""Run a plan: jobs on an executor under one progress view, then the records read back from disk."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from attnq.experiments.executors import Executor, SerialExecutor
from attnq.experiments.jobs import RunJob
from attnq.experiments.plan import ReportPlan, plan_jobs
from attnq.experiments.progress import ProgressView
from attnq.experiments.records import TaskRecord, load_records
from attnq.registry import PluginHost


def run_plan(
    plan: ReportPlan,
    runs_dir: Path,
    executor: Executor | None = None,
    host: PluginHost | None = None,
    measure_speed: bool = False,
    baselines: bool = True,
    progress_interval: float = 30.0,
    stream: TextIO | None = None,
) -> list[TaskRecord]:
    """Train, evaluate and baseline everything the plan names (skipping what is on disk), then read the
    plan's runs and the tasks' baselines back.

    :param measure_speed: also time each task's vector env under random actions (``attnq bench``)
    :param progress_interval: seconds between progress lines (0: a line per finished job only)
    :param stream: where progress goes (default: stderr)
    """
    executor = executor or SerialExecutor(host)
    executor.start()
    jobs = plan_jobs(plan, runs_dir, host, measure_speed, baselines)
    runs_dir.mkdir(parents=True, exist_ok=True)
    with ProgressView(jobs, f"{plan.name}, {executor.name}", progress_interval, stream) as progress:
        executor.run(jobs, progress)
    names = {job.task["name"] for job in jobs}
    # the plan's runs only: the folder may also hold other seeds or torsos of the same tasks
    planned = {Path(job.run_dir).resolve() for job in jobs if isinstance(job, RunJob)}
    return load_records(runs_dir, tasks=names, run_dirs=planned)
