"""``attnq tune``: search a task's settings on Ray Tune, stop weak trials early, confirm the best on seeds.

Each trial is one training run of the task with sampled overrides. Trials report the validation
return that ``eval.every_env_steps`` already measures (on the validation seeds, never the final
evaluation's; the exact one where the domain computes it, :func:`attnq.evaluation.validation_score`):
the latest one, or, for a task that keeps its best checkpoint (``eval.keep_best``), the best so far,
which is what that task's final evaluation will load. ASHA (Li et al. 2020, asynchronous successive
halving) stops the weaker half of the trials at each rung. The best point is then trained again on
fresh seeds beside the task's own settings, through the same pipeline as ``attnq report``, before it
is called best, and written as a task file that ``attnq train`` accepts.

Search space syntax (``--param FIELD=SPEC``): ``uniform:LOW:HIGH``, ``loguniform:LOW:HIGH``,
``randint:LOW:HIGH`` (HIGH excluded), or ``A,B,C`` (a choice; values are YAML scalars).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attnq.checkpoints import atomic_write_text
from attnq.config import DESCRIBES, TaskConfig, apply_overrides, role_of, validate_task
from attnq.errors import AttnqError, SearchInterrupted, TaskFileError
from attnq.evaluation import validation_score
from attnq.experiments.executors import RayExecutor
from attnq.experiments.jobs import RunJob
from attnq.experiments.reuse import learning_hash

DISTRIBUTIONS = ("uniform", "loguniform", "randint")
METRIC = "validation_return"
SEARCH_FILE, TRIALS_FILE = "search.json", "trials.json"  # what was searched; its trials once it finished
RUNGS_FILE = "asha-rungs.pkl"  # the scores ASHA recorded at its rungs, for a resumed search


@dataclass(frozen=True)
class Param:
    """One searched field: ``kind`` is a distribution name or "choice"."""

    path: str
    kind: str
    values: tuple[Any, ...]

    def sample_space(self, tune: Any) -> Any:
        if self.kind == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[self.kind](low, high)

    def examples(self) -> list[Any]:
        """Values that must all make a valid task (the bounds, or every choice)."""
        if self.kind == "randint":
            return [self.values[0], self.values[1] - 1]
        return list(self.values)


def parse_param(text: str, task: TaskConfig) -> Param:
    """``learner.lr=loguniform:1e-4:1e-3`` -> Param; checked against the task's fields and bounds."""
    if "=" not in text:
        raise TaskFileError(
            f"--param {text!r} must look like FIELD=SPEC, e.g. learner.lr=loguniform:1e-4:1e-3 or model.layers=1,2"
        )
    path, spec = (part.strip() for part in text.split("=", 1))
    try:
        role = role_of(path)
    except KeyError:
        raise TaskFileError(
            f"--param {text!r}: {path!r} is not a task field; fix: use a dotted field of the task file, "
            "e.g. learner.lr, model.layers, replay.batch_size"
        ) from None
    if role == DESCRIBES:
        raise TaskFileError(
            f"--param {text!r}: {path} only describes the task; fix: search a field that changes learning"
        )
    kind, _, rest = spec.partition(":")
    if kind in DISTRIBUTIONS:
        bounds = rest.split(":")
        try:
            low, high = (
                (float(b) if kind != "randint" else int(b) for b in bounds) if len(bounds) == 2 else (None, None)
            )
        except ValueError:
            low = high = None
        if low is None or not low < high or (kind == "loguniform" and low <= 0):
            raise TaskFileError(
                f"--param {text!r}: {kind} needs LOW:HIGH with LOW < HIGH"
                f"{' and LOW > 0' if kind == 'loguniform' else ''}; fix: e.g. {path}={kind}:"
                f"{'1e-4:1e-3' if kind != 'randint' else '1:4'}"
            )
        param = Param(path, kind, (low, high))
    elif ":" in spec:
        raise TaskFileError(
            f"--param {text!r}: unknown distribution {kind!r}; fix: use one of {', '.join(DISTRIBUTIONS)}, "
            "or a comma-separated choice A,B,C"
        )
    else:
        values = tuple(yaml.safe_load(v) for v in spec.split(",") if v.strip())
        if not values:
            raise TaskFileError(f"--param {text!r} gives no value; fix: e.g. {path}=1,2")
        param = Param(path, "choice", values)
    for value in param.examples():  # each bound or choice must make a valid task, named if not
        overridden(task, {path: value})
    return param


def overridden(task: TaskConfig, point: dict[str, Any]) -> TaskConfig:
    data = apply_overrides(task.to_dict(), [f"{path}={json.dumps(value)}" for path, value in point.items()])
    return validate_task(data, f"task {task.name!r} with {point}")


def check_sweepable(task: TaskConfig, params: list[Param], samples: int) -> None:
    if not params:
        raise AttnqError(
            "attnq tune needs at least one --param FIELD=SPEC; fix: e.g. --param learner.lr=loguniform:1e-4:1e-3"
        )
    if samples < 1:
        raise AttnqError(f"--samples must be at least 1 (got {samples})")
    if not task.eval.every_env_steps or task.eval.every_env_steps >= task.trainer.max_env_steps:
        raise TaskFileError(
            f"task {task.name!r}: trials are compared on the validation return measured every "
            f"eval.every_env_steps (now {task.eval.every_env_steps}) within trainer.max_env_steps "
            f"({task.trainer.max_env_steps}); fix: --set eval.every_env_steps=N with N below the budget"
        )


def _trial(config: dict[str, Any], task: dict[str, Any], trials_dir: str) -> None:
    """One Tune trial: train the task with the sampled point, reporting each validation return.
    A trial restarted by a resumed search resumes its run folder from the last checkpoint."""
    from ray import tune

    from attnq.checkpoints import CHECKPOINT_DIR, LAST_CHECKPOINT
    from attnq.experiments.jobs import worker_host
    from attnq.training.run import train

    point = overridden(validate_task(task, "sweep"), config)
    run_dir = Path(trials_dir) / tune.get_context().get_trial_id()
    resumable = (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file()

    def report(env_steps: int, means: dict[str, float], best: float) -> None:
        last = validation_score(means)
        score = trial_score(last, best, point.eval.keep_best)
        tune.report({METRIC: score, "last_validation_return": last, "env_steps": env_steps})

    train(point, run_dir=run_dir, resume=run_dir if resumable else None, host=worker_host(), on_evaluation=report)


def trial_score(last: float, best: float, keeps_best: bool) -> float:
    """What a trial is ranked by: the checkpoint its task's final evaluation would load scored on
    validation, i.e. the best round of the run so far when the task keeps its best checkpoint, else
    the last round."""
    return best if keeps_best else last


def search(
    task: TaskConfig,
    params: list[Param],
    samples: int,
    out_dir: Path,
    executor: RayExecutor,
    grace_env_steps: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the trials on Ray Tune with ASHA; returns every trial's point, progress and status.

    The search is kept in ``out_dir``: run again with the same settings, a finished search is read
    back (``trials.json``), an interrupted one resumes (unfinished trials from their run folders'
    last checkpoints), and a different search there is refused.
    """
    budget, every = task.trainer.max_env_steps, task.eval.every_env_steps
    grace = grace_env_steps or max(every, (budget // 4) // every * every)
    identity = search_identity(task, params, samples, grace, seed)
    if (out_dir / TRIALS_FILE).is_file():
        check_same_search(out_dir, identity)
        print(f"[tune] the search in {out_dir} finished before; its trials are read back", flush=True)
        return json.loads((out_dir / TRIALS_FILE).read_text(encoding="utf-8"))
    from ray import tune

    from attnq.experiments.asha import ResumableASHA

    ray = executor.connect()
    [placement] = executor.placements(ray, [RunJob(task.to_dict(), str(out_dir))])
    trainable = tune.with_resources(
        tune.with_parameters(_trial, task=task.to_dict(), trials_dir=str(out_dir / "trials")),
        {"cpu": placement.num_cpus, "gpu": placement.num_gpus},
    )
    experiment = out_dir.resolve() / "tune"
    check_same_search(out_dir, identity)
    if (out_dir / SEARCH_FILE).is_file() and tune.Tuner.can_restore(experiment):
        print(f"[tune] resuming the search in {out_dir}", flush=True)
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True)
    else:
        from ray.tune.search.basic_variant import BasicVariantGenerator

        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / SEARCH_FILE, json.dumps(identity, indent=1))
        scheduler = ResumableASHA(
            str(out_dir.resolve() / RUNGS_FILE),
            time_attr="env_steps",
            max_t=budget,
            grace_period=grace,
            reduction_factor=2,
        )
        tuner = tune.Tuner(
            trainable,
            param_space={p.path: p.sample_space(tune) for p in params},
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max",
                scheduler=scheduler,
                num_samples=samples,
                search_alg=BasicVariantGenerator(random_state=seed),
            ),
            run_config=tune.RunConfig(
                name=experiment.name,
                storage_path=str(experiment.parent),
                verbose=0,
                callbacks=[progress_callback(samples, budget)],
            ),
        )
    with _stops_cleanly() as stop:
        grid = tuner.fit()
    if stop.interrupted:
        raise SearchInterrupted(out_dir, stop.signum)
    trials = []
    for result in grid:
        history = result.metrics_dataframe
        reached = int(result.metrics.get("env_steps", 0)) if result.metrics else 0
        trials.append(
            {
                "trial": str((result.metrics or {}).get("trial_id", Path(result.path).name)),
                "point": {p.path: result.config[p.path] for p in params},
                "validation_return": float(result.metrics.get(METRIC, math.nan)) if result.metrics else math.nan,
                "best_validation_return": float(history[METRIC].max())
                if history is not None and METRIC in history
                else math.nan,
                "env_steps": reached,
                "stopped_early": reached < budget,
                "error": str(result.error) if result.error else None,
            }
        )
    result = {"task": task.name, "budget": budget, "grace_env_steps": grace, "samples": samples, "trials": trials}
    atomic_write_text(out_dir / TRIALS_FILE, json.dumps(result, indent=1))
    return result


def search_identity(task: TaskConfig, params: list[Param], samples: int, grace: int, seed: int) -> dict[str, Any]:
    """What makes two searches the same one: what the trials learn from (speed settings may change
    between a search and its resumption), the searched fields and the schedule."""
    return {
        "task": task.name,
        "learning_hash": learning_hash(task),
        "params": [[p.path, p.kind, list(p.values)] for p in params],
        "samples": samples,
        "grace_env_steps": grace,
        "seed": seed,
    }


def check_same_search(out_dir: Path, identity: dict[str, Any]) -> None:
    if not (out_dir / SEARCH_FILE).is_file():
        return  # finished by an attnq that recorded no search.json: its trials are taken as they are
    recorded = json.loads((out_dir / SEARCH_FILE).read_text(encoding="utf-8"))
    changed = sorted(key for key in identity if recorded.get(key) != identity[key])
    if changed:
        raise AttnqError(
            f"--runs-dir {out_dir} holds another search (its {SEARCH_FILE} differs in {', '.join(changed)}); "
            "fix: run again with the task, --set, --param, --samples, --grace-env-steps and --seed it was "
            "started with to resume it, or give another --runs-dir"
        )


@dataclass
class _Stop:
    signals: list[int] = field(default_factory=list)
    interrupted: bool = False

    @property
    def signum(self) -> int:
        return signal.SIGTERM if signal.SIGTERM in self.signals else signal.SIGINT


@contextlib.contextmanager
def _stops_cleanly() -> Iterator[_Stop]:
    """Tune stops a search cleanly, saving its state, on SIGINT: its handler sets a flag and puts back
    the handler it replaced. So SIGTERM is passed on as SIGINT, and finding our own handler back in
    place afterwards is how a stopped search is told from a finished one (Tune returns normally from
    both). Both handlers are restored after the search, so a signal during the confirmation is ours."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def put_back_by_tune(signum: int, frame: object) -> None:  # a second signal: stop at once
        stop.signals.append(signum)
        raise KeyboardInterrupt

    def forward(signum: int, frame: object) -> None:
        stop.signals.append(signum)
        signal.raise_signal(signal.SIGINT)

    previous_int = signal.signal(signal.SIGINT, put_back_by_tune)
    previous_term = signal.signal(signal.SIGTERM, forward)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "0"  # the clean stop above needs Tune's handler
    try:
        yield stop
        stop.interrupted = signal.getsignal(signal.SIGINT) is put_back_by_tune
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def progress_callback(samples: int, budget: int) -> Any:
    """A Tune callback printing one line per finished trial and one a minute while trials run
    (instead of Tune's tables); built here because Ray is imported only when a sweep runs."""
    import time

    from ray.tune import Callback

    def done(trials: list[Any], ending: Any = None) -> int:
        # counted from the trials, not here, so that a resumed search counts the ones finished before
        return sum(t.status in ("TERMINATED", "ERROR") or t is ending for t in trials)

    class ProgressLines(Callback):
        def __init__(self) -> None:
            self.last_line = time.time()
            self.latest: dict[str, int] = {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.latest[trial.trial_id] = int(result.get("env_steps", 0))
            if time.time() - self.last_line > 60:
                self.last_line = time.time()
                running = ", ".join(f"{t} {s:,}/{budget:,}" for t, s in sorted(self.latest.items()))
                print(f"[tune] {done(trials)}/{samples} trials done; running: {running}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.latest.pop(trial.trial_id, None)
            last = trial.last_result or {}
            steps, value = int(last.get("env_steps", 0)), last.get(METRIC)
            shown = "-" if value is None else f"{value:.4f}"
            print(
                f"[tune] trial {trial.trial_id} {'stopped early' if steps < budget else 'finished'} at "
                f"{steps:,} env steps, "
                f"validation return {shown} ({done(trials, trial)}/{samples})",
                flush=True,
            )

        def on_trial_error(self, iteration, trials, trial, **info):
            self.latest.pop(trial.trial_id, None)
            print(f"[tune] trial {trial.trial_id} failed; its error: {trial.error_file}", flush=True)

    return ProgressLines()


def best_trial(result: dict[str, Any]) -> dict[str, Any]:
    """The trial with the highest score (:func:`trial_score`) among those that reached the budget."""
    complete = [
        t
        for t in result["trials"]
        if not t["stopped_early"] and not t["error"] and math.isfinite(t["validation_return"])
    ]
    if not complete:
        raise AttnqError(
            "no trial reached the budget; fix: more --samples, a larger budget, or a smaller --grace-env-steps"
        )
    return max(complete, key=lambda t: t["validation_return"])


def write_best_task(task: TaskConfig, point: dict[str, Any], path: Path, note: str) -> TaskConfig:
    best = overridden(task, point)
    text = f"# {note}\n" + yaml.safe_dump(best.to_dict(), sort_keys=False)
    atomic_write_text(path, text)
    return best


def trials_table(result: dict[str, Any]) -> str:
    paths = list(result["trials"][0]["point"]) if result["trials"] else []
    header = ["trial", *paths, "env steps", "last validation return", "best validation return", "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in sorted(
        result["trials"],
        key=lambda t: (-t["env_steps"], -(t["validation_return"] if math.isfinite(t["validation_return"]) else -1e18)),
    ):
        values = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in t["point"].values()]
        status = "error" if t["error"] else "stopped early" if t["stopped_early"] else "finished"
        lines.append(
            "| "
            + " | ".join(
                [
                    t["trial"],
                    *values,
                    f"{t['env_steps']:,}",
                    f"{t['validation_return']:.4f}",
                    f"{t['best_validation_return']:.4f}",
                    status,
                ]
            )
            + " |"
        )
    return "\n".join(lines)
