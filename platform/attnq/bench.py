"""``attnq bench``: train and evaluate a task over seeds and torsos, and print the figures.

For each seed it measures, in one process: the rate of stepping the task's vector env with random
actions (the simulator's ceiling), then training (env steps/s including learning), then greedy
evaluation on the task's fixed seeds (of the run's best checkpoint when the task sets
``eval.keep_best``). Baselines are evaluated on the same seeds. Each row carries a
95 % bootstrap interval of its mean return over the evaluation episodes; with several seeds a
summary row per torso gives the interquartile mean over seeds and its bootstrap interval. Results
are printed as a Markdown table and written as JSON so docs/benchmarks.md can quote them.
"""

from __future__ import annotations

import json
import platform as stdlib_platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from attnq.agent import load_agent
from attnq.checkpoints import BEST_CHECKPOINT, CHECKPOINT_DIR, atomic_write_text
from attnq.config import TaskConfig, apply_overrides, validate_task
from attnq.evaluation import policy_metrics
from attnq.registry import PluginHost
from attnq.runtime import TaskRuntime, prepare_task
from attnq.statistics import bootstrap_interval
from attnq.training.run import train

HEADLINE_METRICS = ("return", "exact_return", "crashed", "success", "survived", "mean_speed", "mean_fluid_level",
                    "mean_vasopressor_level", "exact_match", "token_accuracy", "bleu", "chrf", "click_rate", "interest_drift",
                    "nutritious_click_rate", "length")


@dataclass
class BenchRow:
    policy: str
    seed: int | None
    metrics: dict[str, float]
    train_seconds: float | None = None
    train_steps_per_s: float | None = None
    random_steps_per_s: float | None = None
    checkpoint: str | None = None  # the evaluated checkpoint
    return_interval: tuple[float, float] | None = None  # 95 % bootstrap interval (episodes, or seeds for summaries)


@dataclass
class BenchResult:
    task: str
    command: str
    eval_episodes: int
    rows: list[BenchRow] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)


def random_action_rate(runtime: TaskRuntime, env_steps: int) -> float:
    """Env steps/s of the task's own vector env under random actions (resets included)."""
    vector_env = runtime.make_vector_env()
    policy = runtime.baseline("random", runtime.task.seed)
    try:
        observations, _ = vector_env.reset(seed=runtime.task.seed)
        vector_steps = max(1, env_steps // vector_env.num_envs)
        start = time.perf_counter()
        for _ in range(vector_steps):
            observations, *_ = vector_env.step(policy(observations))
        return vector_steps * vector_env.num_envs / (time.perf_counter() - start)
    finally:
        vector_env.close()


REPORTED_DISTRIBUTIONS = ("attnq", "torch", "pytorch-lightning", "gymnasium", "highway-env", "icu-sepsis", "sacrebleu",
                          "recsim-ng", "tensorflow", "numpy")


def library_versions() -> dict[str, str]:
    """Python and the installed versions of the libraries results depend on (absent ones skipped)."""
    from importlib import metadata

    versions = {"python": stdlib_platform.python_version()}
    for name in REPORTED_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_bench(task: TaskConfig, seeds: list[int], torsos: list[str], runs_dir: Path, command: str,
              random_rate_steps: int = 1000, baselines: bool = True, host: PluginHost | None = None) -> BenchResult:
    result = BenchResult(task.name, command, task.eval.episodes, versions=library_versions())
    for torso in torsos:
        for seed in seeds:
            seeded = validate_task(apply_overrides(task.to_dict(), [f"seed={seed}", f"model.torso={torso}"]), task.name)
            runtime = prepare_task(seeded, host)
            # The random-action rate is taken just before and just after training, and averaged, so a
            # machine whose speed drifts during the run does not bias the ratio either way.
            rate_before = random_action_rate(runtime, random_rate_steps)
            trained = train(seeded, runs_dir=runs_dir, host=host)
            rate = (rate_before + random_action_rate(runtime, random_rate_steps)) / 2
            agent = load_agent(evaluated_checkpoint(trained.run_dir, seeded), host)
            evaluation, metrics = policy_metrics(agent.runtime, agent, task.eval.episodes, task.eval.seed)
            result.rows.append(BenchRow(f"{torso}-dqn", seed, metrics, trained.wall_seconds,
                                        trained.env_steps_per_second, rate, str(agent.checkpoint), episode_interval(evaluation)))
        if len(seeds) > 1:
            result.rows.append(seed_summary(f"{torso}-dqn", [row for row in result.rows if row.policy == f"{torso}-dqn"]))
    if baselines:
        runtime = prepare_task(task, host)
        for name in runtime.baseline_names():
            evaluation, metrics = policy_metrics(runtime, runtime.baseline(name, task.seed), task.eval.episodes, task.eval.seed, exact=False)
            result.rows.append(BenchRow(f"baseline:{name}", None, metrics, return_interval=episode_interval(evaluation)))
    return result


def evaluated_checkpoint(run_dir: Path, task: TaskConfig) -> str:
    """The checkpoint a benchmark or report evaluates: the run's best one when the task keeps it
    (``eval.keep_best``, chosen on the validation episodes), its last one otherwise, and also when
    the budget ended before the first validation round."""
    best = run_dir / CHECKPOINT_DIR / BEST_CHECKPOINT
    return str(best) if task.eval.keep_best and best.is_file() else str(run_dir)


def episode_interval(evaluation) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the mean return over the evaluation episodes."""
    estimate = bootstrap_interval([episode["return"] for episode in evaluation.episodes], statistic=np.mean)
    return estimate.low, estimate.high


def seed_summary(policy: str, rows: list[BenchRow]) -> BenchRow:
    """Interquartile mean over seeds of each metric, with the bootstrap interval over seeds for return."""
    metrics = {name: float(bootstrap_interval([row.metrics[name] for row in rows]).point)
               for name in rows[0].metrics if all(name in row.metrics for row in rows)}
    estimate = bootstrap_interval([row.metrics["return"] for row in rows])
    return BenchRow(f"{policy} (IQM of {len(rows)} seeds)", None, metrics, return_interval=(estimate.low, estimate.high))


def format_table(result: BenchResult) -> str:
    metrics = [m for m in HEADLINE_METRICS if any(m in row.metrics for row in result.rows)]
    header = ["policy", "seed", *metrics, "return 95 % CI", "train s", "train steps/s", "random steps/s", "ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result.rows:
        ratio = (row.train_steps_per_s / row.random_steps_per_s) if row.train_steps_per_s and row.random_steps_per_s else None
        cells = [row.policy, "-" if row.seed is None else str(row.seed)]
        cells += [f"{row.metrics[m]:.3f}" if m in row.metrics else "-" for m in metrics]
        cells += ["-" if row.return_interval is None else f"[{row.return_interval[0]:.3f}, {row.return_interval[1]:.3f}]"]
        cells += [_fmt(row.train_seconds, ".0f"), _fmt(row.train_steps_per_s, ".1f"), _fmt(row.random_steps_per_s, ".1f"), _fmt(ratio, ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def write_result(result: BenchResult, path: Path) -> None:
    atomic_write_text(path, json.dumps(asdict(result), indent=1))


def write_markdown_report(result: BenchResult, out_dir: Path, host: PluginHost | None = None) -> Path:
    """``out_dir/README.md`` (table, command, versions), ``bench.json`` and one attention picture."""
    from attnq.explain import explain

    out_dir.mkdir(parents=True, exist_ok=True)
    write_result(result, out_dir / "bench.json")
    lines = [f"# Benchmark: {result.task}", "", "Produced by:", "", "```", result.command, "```", "",
             f"Greedy evaluation over {result.eval_episodes} episodes on the task's fixed seeds; "
             "baselines on the same seeds. Speeds are env steps per second on this machine.", "",
             format_table(result), ""]
    explained = next((row for row in result.rows if row.policy == "transformer-dqn" and row.checkpoint), None)
    if explained is not None:
        agent = load_agent(explained.checkpoint, host)
        png, _, summary = explain(agent, out_dir / "attention")
        lines += ["## What the attention looked at", "",
                  f"One evaluation episode of the seed-{explained.seed} agent "
                  f"({', '.join(f'{k} {v:.2f}' for k, v in summary.items())}). Rows are decisions; "
                  "the text lists the three most attended tokens.", "",
                  f"![attention]({png.relative_to(out_dir)})", ""]
    lines += ["## Versions", "", *[f"- {k} {v}" for k, v in result.versions.items()], ""]
    report = out_dir / "README.md"
    atomic_write_text(report, "\n".join(lines))
    return report
