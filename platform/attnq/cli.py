"""The ``attnq`` command line: plugins, train, evaluate, explain, bench, report, tune.

User errors (:class:`~attnq.errors.AttnqError`) print one clear message and exit with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import warnings
from pathlib import Path

EXIT_USER_ERROR = 2
_received: list[int] = []  # the signal that stopped the command, for its exit status


def _stop_on_signal(signum: int, frame: object) -> None:
    """SIGTERM outside training stops like Ctrl-C (training installs its own clean stop)."""
    _received.append(signum)
    raise KeyboardInterrupt


def _quiet_libraries() -> None:
    # Lightning's banner lines (GPU available..., tips) drown the progress bar; warnings stay.
    import pytorch_lightning  # noqa: F401  (creates its loggers, which set their own levels)

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("pytorch_lightning", "lightning")):
            logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*treespec.*")


def _task_and_overrides(args: argparse.Namespace, host):
    from attnq.catalog import load_named_task

    return load_named_task(args.task, host, args.set or [])


def cmd_plugins(args: argparse.Namespace) -> int:
    from attnq.catalog import available_tasks
    from attnq.registry import load_plugins

    host = load_plugins()
    tasks = available_tasks(host)
    report = {"loaded": [], "failed": []}
    for domain in host.registry:
        names = sorted(n for n, (d, _) in tasks.items() if d == domain.name)
        report["loaded"].append(
            {
                "domain": domain.name,
                "plugin": host.registry.owner(domain.name),
                "description": domain.description,
                "tasks": names + ([f"{domain.name}:<arg>"] if domain.make_task is not None else []),
                "baselines": ["random", *domain.baselines],
            }
        )
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
        print('no attnq plugins found; install one, e.g. pip install "attnq[highway]"')
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from attnq.checkpoints import evaluated_checkpoint
    from attnq.registry import load_plugins
    from attnq.training.run import train

    host = load_plugins()
    task = _task_and_overrides(args, host) if not args.resume else _resumed_task(args, host)
    if args.device:
        task = task.model_copy(update={"trainer": task.trainer.model_copy(update={"accelerator": args.device})})
    result = train(task, runs_dir=Path(args.runs_dir), resume=Path(args.resume) if args.resume else None, host=host)
    print(f"run folder: {result.run_dir}")
    print(f"checkpoint: {result.checkpoint}")
    best, which = evaluated_checkpoint(result.run_dir, task.eval.keep_best)
    if which == "best":
        print(f"best:       {best} (best mean return on the validation episodes during training)")
    evaluations = f", {result.evaluation_seconds:.0f} s of it in evaluations" if result.evaluation_seconds else ""
    print(
        f"trained {result.env_steps} env steps, {result.episodes} episodes in {result.wall_seconds:.0f} s{evaluations} "
        f"({result.env_steps_per_second:.1f} env steps/s of training)"
    )
    return 0


def _resumed_task(args: argparse.Namespace, host):
    """A resumed run keeps the settings it was trained with (its config.yaml), changed only by --set;
    the task named must be the run's own."""
    from attnq.catalog import find_task
    from attnq.checkpoints import CONFIG_FILE, read_run_config
    from attnq.config import apply_overrides, read_task_file, validate_task
    from attnq.errors import CheckpointError

    run_dir = Path(args.resume)
    stored = validate_task(read_run_config(run_dir), str(run_dir / CONFIG_FILE))
    named = read_task_file(find_task(args.task, host))
    if isinstance(named, dict) and named.get("name") != stored.name:
        raise CheckpointError(
            f"{run_dir} is a run of task {stored.name!r}, not {named.get('name')!r}; "
            f"fix: attnq train {stored.name} --resume {run_dir}"
        )
    return validate_task(apply_overrides(stored.to_dict(), args.set or []), f"{run_dir / CONFIG_FILE} with --set")


def _print_metrics_table(title: str, means: dict[str, float], stds: dict[str, float]) -> None:
    print(title)
    width = max(len(k) for k in means) if means else 6
    for name, value in means.items():
        spread = f"  ± {stds[name]:.4f}" if name in stds else ""  # exact and variant figures have none here
        print(f"  {name:<{width}}  {value:10.4f}{spread}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from attnq.agent import load_agent
    from attnq.checkpoints import atomic_write_text
    from attnq.evaluation import policy_metrics

    if args.out and Path(args.out).is_dir():
        from attnq.errors import AttnqError

        raise AttnqError(
            f"--out {args.out} is a folder; fix: give a file name for the JSON, e.g. "
            f"{Path(args.out) / 'evaluation.json'}"
        )
    agent = load_agent(args.run, device=args.device)
    episodes = args.episodes or agent.task.eval.episodes
    seed = agent.task.eval.seed if args.seed is None else args.seed
    # A baseline is built from the run's task seed, the episodes from --seed. A report builds its baselines
    # from the task file's seed, so a run of that seed gives the report's figure; from the episodes' seed,
    # a seeded or trained baseline would act otherwise than in the report whatever the run.
    policy = agent if args.baseline is None else agent.runtime.baseline(args.baseline, agent.task.seed)
    # as a report evaluates: the exact return where the domain has one (never for random), and the variants
    result, means = policy_metrics(agent.runtime, policy, episodes, seed, exact=args.baseline != "random")
    who = f"agent ({agent.checkpoint})" if args.baseline is None else f"baseline {args.baseline}"
    label = f"{agent.task.name} {who}"
    _print_metrics_table(f"{label}: {episodes} episodes, seeds {seed}..{seed + episodes - 1}", means, result.stds())
    payload = {
        "task": agent.task.name,
        "checkpoint": str(agent.checkpoint),
        "policy": args.baseline or "agent",
        **result.to_dict(),
        "mean": means,
    }
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


def _executor(args: argparse.Namespace, host):
    from attnq.experiments.executors import make_executor

    return make_executor(args.executor, host, args.ray_address, args.num_cpus, args.cpus_per_run, args.gpus_per_run)


def cmd_bench(args: argparse.Namespace) -> int:
    """``report`` narrowed to one task, with a row per seed and the simulator's random-action speed."""
    from attnq.catalog import find_task
    from attnq.checkpoints import atomic_write_text
    from attnq.experiments.pipeline import run_plan
    from attnq.experiments.plan import ReportPlan, ReportTask
    from attnq.registry import load_plugins
    from attnq.reporting.markdown import library_versions, summarise, write_report
    from attnq.reporting.tables import results_table

    host = load_plugins()
    task = _task_and_overrides(args, host)
    plan = ReportPlan(
        name=f"bench-{task.name}",
        seeds=tuple(args.seeds),
        torsos=tuple(args.torsos),
        tasks=(ReportTask(task=str(find_task(args.task, host)), overrides=tuple(args.set or ())),),
    )
    runs_dir = Path(args.runs_dir)
    command = "attnq " + " ".join(sys.argv[1:])
    [record] = run_plan(
        plan,
        runs_dir,
        _executor(args, host),
        host,
        measure_speed=True,
        baselines=not args.no_baselines,
        progress_interval=args.progress_every,
    )
    summary = summarise(record)
    print(
        f"\n{command}\n{task.name}: {task.trainer.max_env_steps} env steps per run, evaluation over "
        f"{task.eval.episodes} episodes\n"
    )
    print(results_table(summary, per_seed=True))
    out = Path(args.out or runs_dir / f"bench-{task.name}.json")
    atomic_write_text(out, json.dumps({"command": command, "versions": library_versions(host), **summary}, indent=1))
    print(f"\nresults: {out}")
    if args.report:
        print(f"report: {write_report([record], Path(args.report), plan.name, command, library_versions(host), host)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from attnq.errors import AttnqError
    from attnq.experiments.pipeline import run_plan
    from attnq.experiments.plan import report_profile
    from attnq.experiments.records import (
        load_records,
        read_training_command,
        recorded_profile,
        write_training_command,
    )
    from attnq.registry import load_plugins
    from attnq.reporting.markdown import check_headline_page, library_versions, write_report

    host = load_plugins()
    if args.profile is None:  # a redraw describes its runs as the command that trained them made them
        args.profile = (recorded_profile(Path(args.from_runs)) if args.from_runs else None) or "quick"
    if args.profile == "demo" and not args.from_runs:  # a redraw is the same whatever the profile
        return _report_demo(args, host)
    plan = report_profile(args.profile, host).with_choices(args.tasks, args.seeds, args.torsos, args.set)
    # a redraw is named after its folder (docs/reports/full), not the default profile
    name = args.name or (Path(args.out).name if args.from_runs and args.out else plan.name)
    plan = plan.model_copy(update={"name": name})
    out_dir = Path(args.out or Path("docs") / "reports" / name)
    default_runs = out_dir / "runs" if plan.keeps_runs else Path("runs") / "reports" / name
    runs_dir = Path(args.from_runs or args.runs_dir or default_runs)
    if out_dir.exists() and not out_dir.is_dir():
        raise AttnqError(f"--out {out_dir} is a file; fix: give a folder for the report")
    page = Path(args.page) if args.page else None
    if page is not None:
        check_headline_page(page)
    command = "attnq " + " ".join(sys.argv[1:])
    if args.from_runs:
        records = load_records(runs_dir, tasks=set(args.tasks) if args.tasks else None)
        trained_by = read_training_command(runs_dir)
        command = (
            f"{trained_by}\n# figures and tables redrawn from the saved runs with:\n{command}"
            if trained_by
            else command
        )
    else:
        if not plan.tasks:
            raise AttnqError(f"no task to report on: profile {args.profile!r} has none of {args.tasks}")
        records = run_plan(plan, runs_dir, _executor(args, host), host, progress_interval=args.progress_every)
        write_training_command(runs_dir, command)
    reference = out_dir.parent / plan.reference if plan.reference else None
    index = write_report(records, out_dir, name, command, library_versions(host), host, page, reference)
    print(f"report: {index}\nruns:   {runs_dir}")
    return 0


def _report_demo(args: argparse.Namespace, host) -> int:
    """The README's main job: the committed full-budget agents on fresh episodes, then a live training."""
    from attnq.errors import AttnqError
    from attnq.experiments.demo import demo_parts, run_demo, write_demo
    from attnq.reporting.markdown import library_versions

    for option in ("page", "seeds", "torsos"):
        if getattr(args, option):
            raise AttnqError(
                f"--{option} does not apply to the demo, which shows the committed agents as they are; fix: leave "
                "it out, or pass --profile quick or --profile full"
            )
    out_dir = Path(args.out or Path("docs") / "reports" / (args.name or "demo"))
    if out_dir.exists() and not out_dir.is_dir():
        raise AttnqError(f"--out {out_dir} is a file; fix: give a folder for the report")
    runs_dir = Path(args.runs_dir or Path("runs") / "reports" / out_dir.name)
    full_report = Path("docs") / "reports" / "full"
    parts = demo_parts(host, full_report, runs_dir, args.tasks, tuple(args.set or ()))
    if not parts.agents.tasks and not parts.live.tasks:
        raise AttnqError(
            f"nothing to show: no committed agents in {full_report} and no task declares a live profile"
            + (f" among {args.tasks}" if args.tasks else "")
            + "; fix: run `attnq report --profile full`, or add `live: [overrides]` to a task file's profiles"
        )
    command = "attnq " + " ".join(sys.argv[1:])
    agents, live = run_demo(parts, runs_dir, _executor(args, host), host, args.progress_every)
    index = write_demo(agents, live, out_dir, command, library_versions(host), host, full_report)
    print(index.read_text(encoding="utf-8").split("## How this report was made")[0].rstrip())
    print(f"\nreport: {index}\nruns:   {runs_dir}")
    return 0


def cmd_new_domain(args: argparse.Namespace) -> int:
    """Write a domain plugin package that installs, passes the domain contract and trains."""
    from attnq.scaffold import new_domain

    out = new_domain(args.name, args.env, Path(args.out or f"attnq-{args.name}"))
    print(f"wrote {out}/: a domain plugin for {args.env}. Next:")
    print(f"  pip install -e {out}  &&  attnq plugins  &&  pytest {out}/tests  &&  attnq train {args.name}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Search on Ray Tune, then train the best point and the task as it is on fresh seeds, side by side."""
    from attnq.checkpoints import atomic_write_text
    from attnq.errors import AttnqError
    from attnq.experiments.executors import RayExecutor, import_ray
    from attnq.experiments.pipeline import run_plan
    from attnq.experiments.plan import ReportPlan, ReportTask
    from attnq.experiments.sweep import best_trial, check_sweepable, parse_param, search, trials_table, write_best_task
    from attnq.registry import load_plugins
    from attnq.reporting.markdown import summarise
    from attnq.reporting.tables import results_table
    from attnq.runtime import prepare_task

    host = load_plugins()
    task = _task_and_overrides(args, host)
    params = [parse_param(text, task) for text in args.param or []]
    check_sweepable(task, params, args.samples)
    prepare_task(task, host).context.probe_env.close()  # the task's own errors, before Ray starts
    import_ray()
    out_dir = Path(args.runs_dir or Path("runs") / "tune" / task.name).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise AttnqError(f"--runs-dir {out_dir} is a file; fix: give a folder")
    executor = RayExecutor(args.ray_address, args.num_cpus, args.cpus_per_run, args.gpus_per_run)
    command = "attnq " + " ".join(sys.argv[1:])
    print(
        f"[tune] {task.name}: {args.samples} trials of {task.trainer.max_env_steps:,} env steps over "
        f"{', '.join(p.path for p in params)}; validation every {task.eval.every_env_steps:,} env steps",
        flush=True,
    )
    result = search(task, params, args.samples, out_dir, executor, args.grace_env_steps, args.seed)
    best = best_trial(result)
    tuned_path = out_dir / f"{task.name}-tuned.yaml"
    tuned = write_best_task(
        task.model_copy(update={"name": f"{task.name}-tuned"}),
        best["point"],
        tuned_path,
        f"best of {args.samples} trials (validation return {best['validation_return']:.4f}): {command}",
    )
    print(
        f"[tune] best point {best['point']} (trial {best['trial']}); confirming on seeds {args.confirm_seeds} "
        "beside the task's own settings",
        flush=True,
    )
    plan = ReportPlan(
        name=f"tune-{task.name}",
        seeds=tuple(args.confirm_seeds),
        torsos=(task.model.torso,),
        tasks=(
            ReportTask(task=str(_task_path(args, host)), overrides=tuple(args.set or ())),
            ReportTask(task=str(tuned_path)),
        ),
    )
    records = run_plan(
        plan, out_dir / "confirm", executor, host, baselines=False, progress_interval=args.progress_every
    )
    tables = [f"### {record.task.name}\n\n{results_table(summarise(record))}" for record in records]
    page = "\n".join(
        [
            f"# attnq tune: {task.name}",
            "",
            "```",
            command,
            "```",
            "",
            f"ASHA over {args.samples} trials of {task.trainer.max_env_steps:,} env steps (grace "
            f"{result['grace_env_steps']:,}), ranked on the validation return "
            "(exact where the domain computes it).",
            "",
            trials_table(result),
            "",
            f"## Best point, trained again on seeds {list(args.confirm_seeds)} beside the task as it was",
            "",
            f"Task file: `{tuned_path.name}` ({best['point']}). Final evaluation on the task's fixed episodes.",
            "",
            *tables,
            "",
        ]
    )
    atomic_write_text(out_dir / "README.md", page)
    print("\n".join(tables))
    print(
        f"\ntrials: {out_dir / 'README.md'}\nbest task file: {tuned_path} (name {tuned.name!r}; "
        f"`attnq train {tuned_path}` trains it)"
    )
    return 0


def _task_path(args: argparse.Namespace, host) -> Path:
    from attnq.catalog import find_task

    return find_task(args.task, host)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnq", description="Train Transformer-DQN agents across domain plugins.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list domain plugins, their status and tasks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    def task_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("task", help="task name (see `attnq plugins`) or path to a task .yaml")
        p.add_argument(
            "--set",
            nargs="+",
            metavar="KEY=VALUE",
            help="override task fields, e.g. trainer.max_env_steps=5000 model.layers=1 seed=3",
        )
        p.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")

    p = sub.add_parser("train", help="train an agent on a task")
    task_args(p)
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue this run folder from its last checkpoint, with the "
        "settings it was trained with (--set changes budgets or speed settings)",
    )
    p.add_argument(
        "--device", choices=["auto", "cpu", "gpu"], help="train here (sets trainer.accelerator; default: the task's)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="greedy evaluation of a trained agent on fixed seeds")
    p.add_argument("run", help="run folder or .ckpt file")
    p.add_argument("--episodes", type=int, help="number of episodes (default: the task's eval.episodes)")
    p.add_argument("--seed", type=int, help="first episode seed (default: the task's eval.seed)")
    p.add_argument(
        "--baseline",
        help="evaluate this baseline of the run's domain instead of the agent (built from the run's task seed)",
    )
    p.add_argument("--out", help="also write the full result (per episode) as JSON here")
    p.add_argument(
        "--device", choices=["auto", "cpu", "gpu"], help="evaluate here (default: a GPU when one is visible)"
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("explain", help="draw what the attention looked at in one evaluation episode")
    p.add_argument("run", help="run folder or .ckpt file")
    p.add_argument("--seed", type=int, help="episode seed (default: the task's eval.seed)")
    p.add_argument("--out", help="output folder (default: RUN/explain)")
    p.set_defaults(func=cmd_explain)

    def executor_args(p: argparse.ArgumentParser, choose: bool = True) -> None:
        g = p.add_argument_group("where runs go (docs/scaling.md)")
        if choose:
            g.add_argument(
                "--executor",
                choices=["serial", "ray"],
                default="serial",
                help="serial: one run after another in this process; ray: runs in parallel on Ray (needs attnq[ray])",
            )
        g.add_argument(
            "--ray-address",
            metavar="HOST:PORT",
            help="join this Ray cluster (`ray start --head` prints it); default: start Ray on this machine",
        )
        g.add_argument("--num-cpus", type=int, metavar="N", help="cores a Ray started here may use (default: all)")
        g.add_argument(
            "--cpus-per-run",
            type=float,
            metavar="N",
            help="CPUs each run asks Ray for (default: its torch "
            "threads plus its env worker processes, at most a node's cores)",
        )
        g.add_argument(
            "--gpus-per-run",
            type=float,
            metavar="F",
            help="GPUs each run asks Ray for; a fraction shares one (default: 0.25 where the cluster has GPUs, else 0)",
        )
        g.add_argument(
            "--progress-every",
            type=float,
            default=30.0,
            metavar="S",
            help="seconds between progress lines (default: 30; 0: only when a run finishes)",
        )

    p = sub.add_parser("bench", help="train + evaluate one task over seeds and print speed and quality per seed")
    task_args(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--torsos", nargs="+", default=["transformer"], choices=["transformer", "mlp"])
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--out", help="JSON result file (default: RUNS_DIR/bench-TASK.json)")
    p.add_argument("--report", metavar="DIR", help="also write the report pages (table, curves, attention) to DIR")
    executor_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tune", help="search a task's settings on Ray Tune (ASHA), confirm the best point on seeds")
    task_args(p)
    p.set_defaults(runs_dir=None)
    p.add_argument(
        "--param",
        action="append",
        metavar="FIELD=SPEC",
        help="a searched field: uniform:LOW:HIGH, loguniform:LOW:HIGH, randint:LOW:HIGH or A,B,C (repeatable)",
    )
    p.add_argument("--samples", type=int, default=8, help="trials (default: 8)")
    p.add_argument(
        "--grace-env-steps",
        type=int,
        metavar="N",
        help="env steps every trial gets before it may be stopped (default: a quarter of the budget)",
    )
    p.add_argument(
        "--confirm-seeds",
        type=int,
        nargs="+",
        default=[1, 2, 3],
        help="seeds on which the best point and the task as it is are trained again (default: 1 2 3)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the search's sampling (default: 0)")
    executor_args(p, choose=False)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("new-domain", help="write a domain plugin package to start a new domain from")
    p.add_argument("name", help="domain and task name: lower-case letters, digits and '-' (e.g. my-cartpole)")
    p.add_argument(
        "--env", default="CartPole-v1", help="a registered gymnasium env with Box observations and Discrete actions"
    )
    p.add_argument("--out", help="folder to create (default: ./attnq-NAME)")
    p.set_defaults(func=cmd_new_domain)

    p = sub.add_parser(
        "report", help="train (or collect) runs over tasks x torsos x seeds and write a comparative report"
    )
    p.add_argument(
        "--profile",
        choices=["demo", "quick", "full"],
        default=None,
        help="demo (make demo): the committed full-budget agents on fresh episodes, plus live training of "
        "the tasks that learn in minutes (12-15 min on 2 CPU cores); "
        "quick (the default): every domain, 2 seeds, small budgets (16-29 min on 2 CPU cores); full: task budgets, "
        "3 seeds (hours; its runs are kept in docs/reports/full/runs); with --from: the profile that trained the runs",
    )
    p.add_argument("--name", help="report name (default: the profile's); output goes to docs/reports/NAME")
    p.add_argument("--tasks", nargs="+", help="only these tasks (names or .yaml paths)")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--torsos", nargs="+", choices=["transformer", "mlp"])
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="overrides applied to every task")
    p.add_argument(
        "--runs-dir",
        help="where the report's runs go (default: runs/reports/NAME; for full, OUT/runs, committed with the "
        "report); finished steps are reused",
    )
    p.add_argument(
        "--from", dest="from_runs", metavar="RUNS_DIR", help="redraw from saved runs only: no training, no evaluation"
    )
    p.add_argument("--out", help="report folder (default: docs/reports/NAME)")
    p.add_argument(
        "--page",
        metavar="FILE",
        help="also put the headline table into this results page, between its attnq headline markers "
        "(docs/benchmarks.md has them)",
    )
    executor_args(p)
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    from attnq.errors import AttnqError, RunInterrupted, SearchInterrupted

    for name in ("episodes",):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(f"error: --{name} must be at least 1 (got {value})", file=sys.stderr)
            return EXIT_USER_ERROR
    if threading_is_main():
        signal.signal(signal.SIGTERM, _stop_on_signal)
    try:
        return args.func(args)
    except AttnqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (RunInterrupted, SearchInterrupted) as exc:
        print(f"interrupted by {exc.signal_name}: {exc}", file=sys.stderr)
        print(f"resume with: {resume_command(args, exc.run_dir)}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        signum = _received[-1] if _received else signal.SIGINT
        print(f"interrupted by {signal.Signals(signum).name}; runs keep their last checkpoints", file=sys.stderr)
        if args.command in ("report", "bench", "tune"):
            print(f"resume with: {resume_command(args, None)}", file=sys.stderr)
        return 128 + signum


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def resume_command(args: argparse.Namespace, run_dir: Path | None) -> str:
    """The command that continues an interrupted one: the same report or bench (finished runs are
    reused, a stopped one resumes), or ``train --resume`` with the same task and overrides."""
    words = sys.argv[1:] if sys.argv and Path(sys.argv[0]).name in ("attnq", "cli.py", "__main__.py") else []
    if args.command != "train" or run_dir is None:
        return "attnq " + " ".join(shlex.quote(w) for w in (words or [args.command]))
    command = ["attnq", "train", args.task, "--resume", str(run_dir)]
    if args.set:
        command += ["--set", *args.set]
    return " ".join(shlex.quote(w) for w in command)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
