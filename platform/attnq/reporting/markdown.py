"""Write a report folder: an index across domains, one page per task, figures and ``results.json``.

Numbers in the pages come from ``results.json``, which is computed from the runs folder only, so a
report regenerated with ``attnq report --from RUNS`` prints the same figures without training.
"""

from __future__ import annotations

import json
import os
import platform as stdlib_platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from attnq.agent import load_agent
from attnq.checkpoints import POLICY_CHECKPOINT, atomic_write_text
from attnq.config import EvalVariant
from attnq.domain import CORE_METRICS, DomainSpec
from attnq.errors import AttnqError, PluginError
from attnq.evaluation import variant_metric
from attnq.experiments.records import TaskRecord
from attnq.explain import SCENE_FILE, attending_token, explain
from attnq.registry import PluginHost
from attnq.reporting.figures import plot_learning_curves
from attnq.reporting.tables import cell, results_table
from attnq.statistics import Estimate, bootstrap_interval

FIGURES = "figures"
RESULTS_FILE = "results.json"

CORE_DISTRIBUTIONS = ("attnq", "torch", "pytorch-lightning", "gymnasium", "numpy", "ray")


def library_versions(host: PluginHost | None = None) -> dict[str, str]:
    """Python, the core's libraries, and for each loaded domain its plugin's distribution and the
    libraries it declares (``DomainSpec.libraries``): the installed versions results depend on."""
    from importlib import metadata

    names = list(CORE_DISTRIBUTIONS)
    if host is not None:
        for domain in host.registry:
            plugin = host.plugin_distributions.get(host.registry.owner(domain.name))
            names += [n for n in (plugin, *domain.libraries) if n and n not in names]
    versions = {"python": stdlib_platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def metric_names(record: TaskRecord) -> list[str]:
    """The metrics every run reports, in the domain's order ("return" first)."""
    names: list[str] = []
    for run in record.runs:
        names += [m for m in run.metrics if m not in names]
    return [m for m in names if all(m in run.metrics for run in record.runs)]


def _domain(name: str, host: PluginHost | None) -> DomainSpec | None:
    """The domain's declarations, or None for a report redrawn without its plugin (or without plugins)."""
    try:
        return host.registry.get(name) if host is not None else None
    except PluginError:
        return None


def metric_meanings(
    domain: DomainSpec | None, metrics: list[str], variants: Mapping[str, EvalVariant] | None = None
) -> dict[str, str]:
    """What each reported metric means: the domain's own words (``DomainSpec.metrics``), else the core's;
    a variant's metric (``METRIC@NAME``) says what its evaluation changed."""
    declared = dict(domain.metrics) if domain is not None else {}
    for name, variant in (variants or {}).items():
        for metric in variant.metrics:
            base = declared.get(metric) or CORE_METRICS.get(metric) or metric
            declared[variant_metric(metric, name)] = f"{base}, {variant.description}"
    meanings = {m: declared.get(m) or CORE_METRICS.get(m) for m in metrics}
    return {m: text for m, text in meanings.items() if text}


def summarise(record: TaskRecord, host: PluginHost | None = None) -> dict:
    """The numbers of one task's page: per-seed metrics, IQM and 95 % CI per torso, baselines, anchors."""
    metrics = metric_names(record)
    domain = _domain(record.task.domain, host)
    agents: dict[str, dict] = {}
    for torso in record.torsos():
        runs = record.runs_of(torso)
        agents[torso] = {
            "seeds": [run.seed for run in runs],
            "per_seed": {str(run.seed): {m: run.metrics[m] for m in metrics} for run in runs},
            "per_seed_speed": {
                str(run.seed): {
                    "train_env_steps_per_second": run.train_env_steps_per_second,
                    "random_env_steps_per_second": run.random_env_steps_per_second,
                    "return_interval": run.return_interval,
                }
                for run in runs
            },
            "iqm": {m: bootstrap_interval([run.metrics[m] for run in runs]).to_dict() for m in metrics},
            "env_steps": [run.env_steps for run in runs],
            "train_seconds": [run.train_seconds for run in runs],
            "env_steps_per_second": float(
                np.mean([run.env_steps / run.wall_seconds for run in runs if run.wall_seconds > 0])
            )
            if any(run.wall_seconds > 0 for run in runs)
            else None,
        }
    anchors = [anchor.model_dump() for anchor in record.task.anchors]
    return {
        "task": record.task.name,
        "domain": record.task.domain,
        "description": record.task.description,
        "metrics": metrics,
        "agents": agents,
        "baselines": record.baselines,
        "anchors": anchors,
        "metric_meanings": metric_meanings(domain, metrics, record.task.eval.variants),
        "headline_metric": domain.headline_metric if domain is not None else None,
        "eval": {"episodes": record.task.eval.episodes, "seed": record.task.eval.seed},
        "max_env_steps": record.task.trainer.max_env_steps,
    }


def _attention_section(record: TaskRecord, out_dir: Path, host: PluginHost | None) -> list[str]:
    runs = record.runs_of("transformer")
    if not runs:
        return ["No Transformer-DQN run in this report, so no attention to show.", ""]
    run = runs[0]
    policy = run.run_dir / POLICY_CHECKPOINT  # the evaluated network (best or last), where it was exported
    agent = load_agent(str(policy if policy.is_file() else run.run_dir), host)
    figure_dir = out_dir / FIGURES / record.task.name
    png, _, episode = explain(agent, figure_dir)
    lines = [
        f"One greedy evaluation episode of the seed-{run.seed} Transformer-DQN "
        f"({', '.join(f'{k} {v:.2f}' for k, v in episode.items())}). Each row is a decision, each column a "
        "token, labelled by the domain's encoder; the colour is the last-layer attention of "
        f"{attending_token(agent.task)} "
        "(mean over heads) relative to the uniform share: white when every visible token gets the same, "
        "red for more, blue for less, grey for masked tokens. Beside each row: the action taken and the "
        "three most attended tokens with their attention weights.",
        "",
        f"![attention of {record.task.name}]({png.relative_to(out_dir).as_posix()})",
        "",
    ]
    scene = figure_dir / SCENE_FILE
    if scene.is_file():
        lines += [
            "The same episode drawn as a scene: each token at its position, coloured and sized by attention.",
            "",
            f"![attention scene of {record.task.name}]({scene.relative_to(out_dir).as_posix()})",
            "",
        ]
    return lines


def task_page(record: TaskRecord, summary: dict, out_dir: Path, host: PluginHost | None) -> str:
    task = record.task
    seeds = sorted({run.seed for run in record.runs})
    lines = [
        f"# {task.name}",
        "",
        task.description,
        "",
        f"Domain `{task.domain}`; {task.trainer.max_env_steps:,} env steps per run; seeds {seeds}; evaluation over "
        f"{task.eval.episodes:,} greedy episodes on fixed seeds (from {task.eval.seed}); baselines on the "
        "same episodes.",
        "",
        "## Results",
        "",
        "Agents: interquartile mean over seeds with its 95 % percentile-bootstrap interval over seeds "
        "(Agarwal et al. 2021); with two or three seeds the interval is wide and says so. Baselines: the mean "
        "over the evaluation episodes. Env steps/s: training throughput (acting and learning) on the machine "
        "that made the runs, with whatever else ran on it then: a figure of that machine and its load, not of "
        "the code; `attnq bench` sets it beside the simulator's own random-action rate, measured in the same run.",
        "",
        results_table(summary),
        "",
    ]
    lines += [f"- `{name}`: {meaning}" for name, meaning in summary["metric_meanings"].items()]
    lines += [""] if summary["metric_meanings"] else []
    for number, anchor in enumerate(summary["anchors"], start=1):
        lines.append(f"[{number}] {anchor['policy']}: {anchor['source']}")
    if summary["anchors"]:
        lines.append("")
    lines += ["## Learning curves", ""]
    curves = out_dir / FIGURES / f"{task.name}-curves.png"
    if plot_learning_curves(record, curves):
        lines += [f"![learning curves of {task.name}]({curves.relative_to(out_dir).as_posix()})", ""]
    else:
        lines += ["No run logged enough points for a curve.", ""]
    lines += ["## What the attention looked at", "", *_attention_section(record, out_dir, host)]
    lines += [
        "## Runs",
        "",
        "| torso | seed | env steps | " + " | ".join(summary["metrics"]) + " | run folder |",
        "|" + "---|" * (len(summary["metrics"]) + 4),
    ]
    for run in sorted(record.runs, key=lambda r: (r.torso, r.seed)):
        values = " | ".join(cell(run.metrics[m]) for m in summary["metrics"])
        lines.append(f"| {run.torso} | {run.seed} | {run.env_steps:,} | {values} | `{run.run_dir.as_posix()}` |")
    return "\n".join(lines) + "\n"


HEADLINE_START, HEADLINE_END = "<!-- attnq headline: start -->", "<!-- attnq headline: end -->"


def headline_table(
    summaries: list[dict],
    link_prefix: str = "",
    reference: list[dict] | None = None,
    reference_column: str = "at full budget",
) -> list[str]:
    """One row per task: its headline metric for each torso (IQM over seeds [95 % interval]), the
    best baseline, published figures (sources as notes below), budget and training time per run.

    :param reference: another report's task summaries (the full report beside a smoke-budget one):
        their Transformer-DQN figure at their own budget becomes a last column
    :param reference_column: that column's heading
    """
    torsos = _torsos(summaries)
    lines = [
        "| task | metric | " + " | ".join(f"{t}-dqn" for t in torsos) + " | best baseline | published | env steps "
        "| training min per run ("
        + " / ".join(torsos)
        + ") |"
        + (f" {reference_column} |" if reference is not None else ""),
        "|" + "---|" * (6 + len(torsos) + (reference is not None)),
    ]
    full = {summary["task"]: summary for summary in reference or []}
    notes: list[str] = []
    for summary in summaries:
        metric = _headline(summary)
        agents = [
            Estimate(**summary["agents"][t]["iqm"][metric]).format() if t in summary["agents"] else "-" for t in torsos
        ]
        baselines = {name: values[metric] for name, values in summary["baselines"].items() if metric in values}
        best = max(baselines, key=baselines.get) if baselines else None
        published = []
        for anchor in summary["anchors"]:
            # an exact expected return is compared with published (sampled) returns
            value = anchor["metrics"].get(metric, anchor["metrics"].get("return") if metric == "exact_return" else None)
            if value is not None:
                notes.append(f"{anchor['policy']}: {anchor['source']}")
                published.append(f"{value:g} [{len(notes)}]")
        minutes = [
            _minutes(summary["agents"][t].get("train_seconds", [])) if t in summary["agents"] else "-" for t in torsos
        ]
        lines.append(
            f"| [{summary['task']}]({link_prefix}{summary['task']}.md) | {metric} | "
            + " | ".join(agents)
            + f" | {f'{best} {baselines[best]:.3f}' if best else '-'} | {'; '.join(published) or '-'} "
            f"| {summary['max_env_steps']:,} | {' / '.join(minutes)} |"
            + (f" {_at_full_budget(full.get(summary['task']), metric)} |" if reference is not None else "")
        )
    lines += ["", "Agents: interquartile mean over seeds [95 % bootstrap interval]. Published figures:", ""]
    lines += [f"[{number}] {note}" for number, note in enumerate(notes, start=1)] or ["none cited."]
    return lines


def _at_full_budget(summary: dict | None, metric: str) -> str:
    agent = (summary or {}).get("agents", {}).get("transformer")
    if agent is None or metric not in agent["iqm"]:
        return "not yet run"
    return f"{Estimate(**agent['iqm'][metric]).format()} ({summary['max_env_steps']:,} env steps)"


def _minutes(seconds: list[float | None]) -> str:
    known = [s for s in seconds if s]
    if not known:
        return "-"
    minutes = np.median(known) / 60
    return "<1" if minutes < 0.5 else f"{minutes:.0f}"


def check_headline_page(page: Path) -> str:
    """The page's text, if it has the headline markers (checked before a report trains anything)."""
    if not page.is_file():
        raise AttnqError(f"--page {page} is not a file; fix: give the results page to update, e.g. docs/benchmarks.md")
    text = page.read_text(encoding="utf-8")
    start, end = text.find(HEADLINE_START), text.find(HEADLINE_END)
    if start < 0 or end < start:
        raise AttnqError(
            f"--page {page} has no headline markers; fix: put the line {HEADLINE_START} and, below it, "
            f"{HEADLINE_END} where the table belongs"
        )
    return text


def write_headline(page: Path, summaries: list[dict], report_dir: Path) -> None:
    """Replace the block between the headline markers of ``page`` (a results page such as
    docs/benchmarks.md) with the report's headline table, linked to the report's pages."""
    text = check_headline_page(page)
    prefix = Path(os.path.relpath(report_dir, page.parent)).as_posix() + "/"
    before, rest = text.split(HEADLINE_START, 1)
    after = rest.split(HEADLINE_END, 1)[1]
    table = "\n".join(headline_table(summaries, prefix))
    atomic_write_text(page, f"{before}{HEADLINE_START}\n{table}\n{HEADLINE_END}{after}")


def smoke_budget_note(reference_link: str) -> list[str]:
    """What a report at smoke budgets says above its table."""
    return [
        "**Smoke budgets**, far below the task files' own: these rows show the pipeline at work, not "
        "converged agents. The last column is the Transformer-DQN at the task's full budget, from "
        f"[the full report]({reference_link}).",
        "",
    ]


def index_page(
    name: str,
    summaries: list[dict],
    command: str,
    versions: dict[str, str],
    reference: list[dict] | None = None,
    reference_link: str = "",
    intro: list[str] | None = None,
    sections: list[str] = (),
    reference_column: str = "at full budget",
) -> str:
    """:param intro: lines above the headline table (default: the smoke-budget note where there is a reference)
    :param sections: lines after it (another part of the report)"""
    if intro is None:
        intro = smoke_budget_note(reference_link) if reference is not None else []
    lines = [
        f"# attnq report: {name}",
        "",
        "One Transformer-DQN per domain, its MLP ablation (same encoder, no attention) and the domain's baselines, "
        "evaluated on the same fixed episodes. Each task's page has the full table with intervals, learning "
        "curves and what the attention looked at.",
        "",
        *intro,
        *headline_table(summaries, reference=reference, reference_column=reference_column),
        "",
        *sections,
        "## How this report was made",
        "",
        "```",
        command,
        "```",
        "",
        "Figures and tables can be redrawn from the saved runs without training: "
        "`attnq report --from RUNS_DIR --out DIR`.",
        "",
        "## Versions",
        "",
        *[f"- {k} {v}" for k, v in versions.items()],
        "",
    ]
    return "\n".join(lines)


def _torsos(summaries: list[dict]) -> list[str]:
    seen: list[str] = []
    for summary in summaries:
        seen += [t for t in summary["agents"] if t not in seen]
    return seen


def _headline(summary: dict) -> str:
    """The domain's declared headline metric, else an exact return, else the return."""
    preferred = (summary.get("headline_metric"), "exact_return", "return", *summary["metrics"])
    return next(m for m in preferred if m in summary["metrics"])


def report_summaries(report_dir: Path) -> list[dict]:
    """The task summaries a written report holds (its ``results.json``); none for a report not made yet."""
    saved = report_dir / RESULTS_FILE
    return json.loads(saved.read_text(encoding="utf-8"))["tasks"] if saved.is_file() else []


def write_report(
    records: list[TaskRecord],
    out_dir: Path,
    name: str,
    command: str,
    versions: dict[str, str],
    host: PluginHost | None = None,
    page: Path | None = None,
    reference_dir: Path | None = None,
    intro: list[str] | None = None,
    sections: list[str] = (),
    reference_column: str = "at full budget",
) -> Path:
    """Write every page and figure under ``out_dir``; returns the index page.

    :param page: also put the headline table into this results page (see :func:`write_headline`)
    :param reference_dir: another report (the full one) whose Transformer-DQN figures are shown
        beside these in a last column (see :func:`headline_table`)
    :param intro: lines above the index's table; :param sections: lines after it
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [summarise(record, host) for record in records]
    for record, summary in zip(records, summaries, strict=True):
        atomic_write_text(out_dir / f"{record.task.name}.md", task_page(record, summary, out_dir, host))
    atomic_write_text(
        out_dir / RESULTS_FILE,
        json.dumps({"name": name, "command": command, "versions": versions, "tasks": summaries}, indent=1),
    )
    index = out_dir / "README.md"
    reference, link = None, ""
    if reference_dir is not None:
        reference = report_summaries(reference_dir)
        link = Path(os.path.relpath(reference_dir / "README.md", out_dir)).as_posix()
    text = index_page(name, summaries, command, versions, reference, link, intro, sections, reference_column)
    atomic_write_text(index, text)
    if page is not None:
        write_headline(page, summaries, out_dir)
    return index
