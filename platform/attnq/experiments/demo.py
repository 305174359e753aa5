"""The README's main job: trained agents in minutes, and one training that learns while you watch.

A newcomer should meet agents that learned, not smoke-budget ones. So the demo

1. copies the exported policies of the committed full report's agents (``docs/reports/full``,
   trained for hours at each task's own budget) into its runs folder and evaluates them again on
   episodes no run has trained, validated or been reported on (from :data:`FRESH_EVAL_SEED`),
   beside every baseline of their domain on the same episodes, and draws their attention;
2. trains from scratch the tasks whose files declare a ``live`` profile (a small budget at which
   they visibly learn), labelled as such, with the full-budget figure beside them.

Both parts go through the one report pipeline (:func:`~attnq.experiments.pipeline.run_plan`);
nothing here trains or evaluates by itself.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from attnq.checkpoints import CONFIG_FILE, POLICY_CHECKPOINT, read_run_config
from attnq.config import BUDGET, EVALUATES, LEARNS, role_of
from attnq.experiments.executors import Executor
from attnq.experiments.pipeline import run_plan
from attnq.experiments.plan import ReportPlan, ReportTask, report_profile
from attnq.experiments.records import TaskRecord
from attnq.experiments.state import STATE_FILE, policy_only, read_state
from attnq.registry import PluginHost
from attnq.reporting.markdown import headline_table, report_summaries, write_report

# Far from every seed a run uses: training resets from seed * 1,000,003 + env steps, validation
# from eval.seed_during_training (1,000,000), reports from eval.seed (10,000 by default); below 2**31
# for simulators that keep seeds in 32-bit integers.
FRESH_EVAL_SEED = 500_000_000
LIVE_PROFILE = "live"
_QUIET = ("trainer.progress_bar=false",)


@dataclass(frozen=True)
class DemoParts:
    """The demo's two plans: committed agents to evaluate again, tasks to train live."""

    agents: ReportPlan
    live: ReportPlan


def committed_runs(full_report: Path) -> dict[str, list[Path]]:
    """The finished runs (in ``full_report/runs``) of every task in the committed full report, by name.

    A task is in the report's ``results.json`` only once all its runs and baselines are done, so
    the runs folder may hold unfinished tasks beside it; those are not shown."""
    full_runs = full_report / "runs"
    found = {}
    for name in [summary["task"] for summary in report_summaries(full_report)]:
        runs = [
            config.parent
            for config in sorted((full_runs / name).glob(f"*/{CONFIG_FILE}"))
            if (config.parent / POLICY_CHECKPOINT).is_file() and _finished(config.parent)
        ]
        if runs:
            found[name] = runs
    return found


def _finished(run_dir: Path) -> bool:
    state = read_state(run_dir)
    return state is not None and state.status == "finished"


def _not_learning(overrides: tuple[str, ...]) -> tuple[str, ...]:
    """The overrides a trained agent can take (evaluation, speed, text); the rest are for live training.
    A key that names no field is kept, so that loading the task refuses it with its fix."""
    kept = []
    for text in overrides:
        try:
            role = role_of(text.partition("=")[0].strip())
        except KeyError:
            role = EVALUATES
        if role not in (LEARNS, BUDGET):
            kept.append(text)
    return tuple(kept)


STAGED_FILES = (CONFIG_FILE, STATE_FILE, POLICY_CHECKPOINT)


def stage_run(source: Path, target: Path) -> None:
    """Copy what a committed run keeps (config, state, exported policy, training logs) to ``target``,
    where it is a finished policy-only run that the pipeline evaluates and never trains. Once: a
    staged run is reused with its evaluation by the next demo, until the committed run changes
    (a pull brings a retrained agent), when it is staged afresh and evaluated again."""
    if policy_only(target):
        if all(filecmp.cmp(source / name, target / name, shallow=False) for name in STAGED_FILES):
            return
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, STATE_FILE):
        shutil.copy2(source / name, target / name)
    for logs in source.glob("logs*"):
        if logs.is_dir():
            shutil.copytree(logs, target / logs.name, dirs_exist_ok=True)
    shutil.copy2(source / POLICY_CHECKPOINT, target / POLICY_CHECKPOINT)  # last: it marks the copy done


def demo_parts(
    host: PluginHost | None,
    full_report: Path,
    runs_dir: Path,
    tasks: list[str] | None = None,
    overrides: tuple[str, ...] = (),
) -> DemoParts:
    """Stage the committed agents under ``runs_dir/agents`` and plan both parts of the demo.

    :param full_report: the committed full report (its ``runs/`` and ``results.json``)
    :param tasks: only these task names (default: all)
    :param overrides: ``--set`` overrides: all for the live tasks; for the committed agents only
        those that do not change what or how far they learned (e.g. ``eval.episodes=5``)
    """
    committed = committed_runs(full_report)
    committed = {name: runs for name, runs in committed.items() if not tasks or name in tasks}
    declared = {entry.task: entry.overrides for entry in report_profile("demo", host).tasks}
    chosen, seeds, torsos = [], set(), set()
    for name, runs in committed.items():
        for run in runs:
            stage_run(run, runs_dir / "agents" / name / run.name)
        # the agents' own settings (the task file may have moved on since), evaluated on fresh episodes
        fresh = (*_QUIET, *declared.get(name, ()), f"eval.seed={FRESH_EVAL_SEED}", *_not_learning(overrides))
        chosen.append(ReportTask(task=str(runs[0] / CONFIG_FILE), overrides=fresh))
        for run in runs:  # what each agent is, as its own config says (not its folder's name)
            config = read_run_config(run)
            torsos.add(config["model"]["torso"])
            seeds.add(int(config["seed"]))
    agents = ReportPlan(
        name="demo",
        tasks=tuple(chosen),
        torsos=tuple(sorted(torsos, key=lambda t: (t != "transformer", t))) or ("transformer", "mlp"),
        seeds=tuple(sorted(seeds)) or (0,),
    )
    live = report_profile(LIVE_PROFILE, host)
    live = live.model_copy(update={"tasks": tuple(t for t in live.tasks if not tasks or t.task in tasks)})
    live = live.with_choices(None, None, None, list(overrides))
    return DemoParts(agents, live)


def run_demo(
    parts: DemoParts,
    runs_dir: Path,
    executor: Executor | None,
    host: PluginHost | None,
    progress_interval: float = 30.0,
) -> tuple[list[TaskRecord], list[TaskRecord]]:
    """Evaluate the committed agents, then train the live tasks; the records of each part."""
    agents = (
        run_plan(parts.agents, runs_dir / "agents", executor, host, progress_interval=progress_interval)
        if parts.agents.tasks
        else []
    )
    live = (
        run_plan(parts.live, runs_dir / "live", executor, host, progress_interval=progress_interval)
        if parts.live.tasks
        else []
    )
    return agents, live


def write_demo(
    agents: list[TaskRecord],
    live: list[TaskRecord],
    out_dir: Path,
    command: str,
    versions: dict[str, str],
    host: PluginHost | None,
    full_report: Path,
) -> Path:
    """The demo's report: the committed agents on fresh episodes, then the live training (its own
    pages under ``OUT/live``); returns the index page."""
    full_link = Path(os.path.relpath(full_report / "README.md", out_dir)).as_posix()
    sections: list[str] = []
    if live:
        write_report(live, out_dir / LIVE_PROFILE, "demo, live training", command, versions, host, None, full_report)
        sections = [
            "## Trained just now",
            "",
            "**Smoke budget**: trained from scratch by this command for a few minutes, far below the task's "
            "own budget; it shows how far minutes of training get, not a converged agent. The last "
            "column is the same task at its full budget.",
            "",
            *headline_table(
                report_summaries(out_dir / LIVE_PROFILE), f"{LIVE_PROFILE}/", report_summaries(full_report)
            ),
            "",
        ]
    if agents:
        episodes = sorted({record.task.eval.episodes for record in agents})
        intro = [
            "## Trained agents on fresh episodes",
            "",
            f"Agents trained at each task's full budget for [the full report]({full_link}) and committed with "
            f"it, evaluated again by this command on {' / '.join(f'{n:,}' for n in episodes)} episodes that no "
            f"run trained, validated or was reported on (seeds from {FRESH_EVAL_SEED:,}), beside their "
            "domain's baselines on the same episodes. The last column is the Transformer-DQN on the full "
            "report's own episodes.",
            "",
        ]
    else:
        intro = [
            "There is no committed full report yet (`attnq report --profile full` makes it), so there are no "
            "trained agents to show.",
            "",
        ]
    return write_report(
        agents,
        out_dir,
        "demo",
        command,
        versions,
        host,
        reference_dir=full_report,
        intro=intro,
        sections=sections,
        reference_column="in the full report",
    )
