"""The ``attnq`` command line: plugins, train, evaluate, explain, bench, report.

User errors (:class:`~attnq.errors.AttnqError`) print one clear message and exit with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

EXIT_USER_ERROR = 2


def _quiet_libraries() -> None:
    # Lightning's banner lines (GPU available..., tips) drown the progress bar; warnings stay.
    import pytorch_lightning  # noqa: F401  (creates its loggers, which set their own levels)

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("pytorch_lightning", "lightning")):
            logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*treespec.*")


def _task_and_overrides(args: argparse.Namespace, host):
    from attnq.catalog import find_task
    from attnq.config import load_task

    return load_task(find_task(args.task, host), args.set or [])


def cmd_plugins(args: argparse.Namespace) -> int:
    from attnq.catalog import available_tasks
    from attnq.registry import load_plugins

    host = load_plugins()
    tasks = available_tasks(host)
    report = {"loaded": [], "failed": []}
    for domain in host.registry:
        names = sorted(n for n, (d, _) in tasks.items() if d == domain.name)
        report["loaded"].append({"domain": domain.name, "plugin": host.registry.owner(domain.name),
                                 "description": domain.description, "tasks": names,
                                 "baselines": ["random", *domain.baselines]})
    for failure in host.failures:
        report["failed"].append({"plugin": failure.name, "error": failure.error, "fix": failure.install_hint})
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for item in report["loaded"]:
        print(f"{item['domain']:<14} loaded      plugin={item['plugin']}  tasks: {', '.join(item['tasks']) or '-'}")
        print(f"{'':<14} {item['description']}; baselines: {', '.join(item['baselines'])}")
    for item in report["failed"]:
        print(f"{item['plugin']:<14} NOT LOADED  {item['error']}\n{'':<14} fix: {item['fix']}")
    if not report["loaded"] and not report["failed"]:
        print("no attnq plugins found; install one, e.g. pip install \"attnq[highway]\"")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from attnq.checkpoints import BEST_CHECKPOINT
    from attnq.registry import load_plugins
    from attnq.training.run import train

    host = load_plugins()
    task = _task_and_overrides(args, host)
    result = train(task, runs_dir=Path(args.runs_dir), resume=Path(args.resume) if args.resume else None, host=host)
    print(f"run folder: {result.run_dir}")
    print(f"checkpoint: {result.checkpoint}")
    best = result.checkpoint.parent / BEST_CHECKPOINT
    if task.eval.keep_best and best.is_file():
        print(f"best:       {best} (best mean return on the validation episodes during training)")
    evaluations = f", {result.evaluation_seconds:.0f} s of it in evaluations" if result.evaluation_seconds else ""
    print(f"trained {result.env_steps} env steps, {result.episodes} episodes in {result.wall_seconds:.0f} s{evaluations} "
          f"({result.env_steps_per_second:.1f} env steps/s of training)")
    return 0


def _print_metrics_table(title: str, means: dict[str, float], stds: dict[str, float]) -> None:
    print(title)
    width = max(len(k) for k in means) if means else 6
    for name, value in means.items():
        print(f"  {name:<{width}}  {value:10.4f}  ± {stds[name]:.4f}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from attnq.agent import load_agent
    from attnq.checkpoints import atomic_write_text
    from attnq.evaluation import evaluate_policy

    agent = load_agent(args.run)
    episodes = args.episodes or agent.task.eval.episodes
    seed = agent.task.eval.seed if args.seed is None else args.seed
    policy = agent if args.baseline is None else agent.runtime.baseline(args.baseline, seed)
    result = evaluate_policy(agent.runtime, policy, episodes, seed)
    label = f"{agent.task.name} {'agent' if args.baseline is None else 'baseline ' + args.baseline}"
    _print_metrics_table(f"{label}: {episodes} episodes, seeds {seed}..{seed + episodes - 1}", result.means(), result.stds())
    payload = {"task": agent.task.name, "checkpoint": str(agent.checkpoint), "policy": args.baseline or "agent", **result.to_dict()}
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(payload, indent=1))
    print(json.dumps({k: payload[k] for k in ("task", "policy", "episodes", "mean", "std")}))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from attnq.agent import load_agent
    from attnq.explain import explain

    agent = load_agent(args.run)
    out_dir = Path(args.out) if args.out else agent.run_dir / "explain"
    png, js, summary = explain(agent, out_dir, args.seed)
    print(f"attention picture: {png}\nper-step data:     {js}")
    print("episode: " + ", ".join(f"{k}={v:.2f}" for k, v in summary.items()))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from attnq.bench import format_table, run_bench, write_markdown_report, write_result
    from attnq.registry import load_plugins

    host = load_plugins()
    task = _task_and_overrides(args, host)
    command = "attnq " + " ".join(sys.argv[1:])
    result = run_bench(task, args.seeds, args.torsos, Path(args.runs_dir), command, baselines=not args.no_baselines, host=host)
    table = format_table(result)
    print(f"\n{command}\n{task.name}: {task.trainer.max_env_steps} env steps per run, evaluation over {task.eval.episodes} episodes\n")
    print(table)
    out = Path(args.out or Path(args.runs_dir) / f"bench-{task.name}.json")
    write_result(result, out)
    print(f"\nresults: {out}")
    if args.report:
        print(f"report: {write_markdown_report(result, Path(args.report), host)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from attnq.bench import library_versions
    from attnq.errors import AttnqError
    from attnq.registry import load_plugins
    from attnq.reporting.collect import collect, load_records, read_training_command, write_training_command
    from attnq.reporting.markdown import write_report
    from attnq.reporting.plan import PROFILES

    host = load_plugins()
    plan = PROFILES[args.profile].with_choices(args.tasks, args.seeds, args.torsos, args.set)
    name = args.name or plan.name
    runs_dir = Path(args.from_runs or args.runs_dir or Path("runs") / "reports" / name)
    out_dir = Path(args.out or Path("docs") / "reports" / name)
    command = "attnq " + " ".join(sys.argv[1:])
    if args.from_runs:
        records = load_records(runs_dir)
        trained_by = read_training_command(runs_dir)
        command = f"{trained_by}\n# figures and tables redrawn from the saved runs with:\n{command}" if trained_by else command
    else:
        if not plan.tasks:
            raise AttnqError(f"no task to report on: profile {args.profile!r} has none of {args.tasks}")
        records = collect(plan, runs_dir, host, say=lambda line: print(line, flush=True))
        write_training_command(runs_dir, command)
    index = write_report(records, out_dir, name, command, library_versions(), host)
    print(f"report: {index}\nruns:   {runs_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnq", description="Train Transformer-DQN agents across domain plugins.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list domain plugins, their status and tasks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    def task_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("task", help="task name (see `attnq plugins`) or path to a task .yaml")
        p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override task fields, e.g. trainer.max_env_steps=5000 model.layers=1 seed=3")
        p.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")

    p = sub.add_parser("train", help="train an agent on a task")
    task_args(p)
    p.add_argument("--resume", metavar="RUN", help="continue this run folder from its last checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="greedy evaluation of a trained agent on fixed seeds")
    p.add_argument("run", help="run folder or .ckpt file")
    p.add_argument("--episodes", type=int, help="number of episodes (default: the task's eval.episodes)")
    p.add_argument("--seed", type=int, help="first episode seed (default: the task's eval.seed)")
    p.add_argument("--baseline", help="evaluate this baseline of the run's domain instead of the agent")
    p.add_argument("--out", help="also write the full result (per episode) as JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("explain", help="draw what the attention looked at in one evaluation episode")
    p.add_argument("run", help="run folder or .ckpt file")
    p.add_argument("--seed", type=int, help="episode seed (default: the task's eval.seed)")
    p.add_argument("--out", help="output folder (default: RUN/explain)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("bench", help="train + evaluate over seeds and print figures (speed and quality)")
    task_args(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--torsos", nargs="+", default=["transformer"], choices=["transformer", "mlp"])
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--out", help="JSON result file (default: RUNS_DIR/bench-TASK.json)")
    p.add_argument("--report", metavar="DIR", help="also write a Markdown report with an attention picture to DIR")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="train (or collect) runs over tasks x torsos x seeds and write a comparative report")
    p.add_argument("--profile", choices=["quick", "full"], default="quick",
                   help="quick: every domain, 2 seeds, small budgets (~15 min on 2 CPU cores); full: task budgets, 3 seeds")
    p.add_argument("--name", help="report name (default: the profile's); output goes to docs/reports/NAME")
    p.add_argument("--tasks", nargs="+", help="only these tasks (names or .yaml paths)")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--torsos", nargs="+", choices=["transformer", "mlp"])
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="overrides applied to every task")
    p.add_argument("--runs-dir", help="where the report's runs go (default: runs/reports/NAME); finished steps are reused")
    p.add_argument("--from", dest="from_runs", metavar="RUNS_DIR", help="redraw from saved runs only: no training, no evaluation")
    p.add_argument("--out", help="report folder (default: docs/reports/NAME)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    from attnq.errors import AttnqError

    for name in ("episodes",):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(f"error: --{name} must be at least 1 (got {value})", file=sys.stderr)
            return EXIT_USER_ERROR
    try:
        return args.func(args)
    except AttnqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; resume with `attnq train TASK --resume RUN`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
