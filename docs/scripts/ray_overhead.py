"""Ray's cost per run: from handing a job to the executor to the run's first env step.

Starts a local Ray (timed), submits two small sepsis runs at once to fresh workers, and reads each
run's ``state.json`` (``fit_started``, written just before the first env step); then the same
after the executor's warm-up (what a report gets: workers load attnq while the driver plans); then
one such job serially in this process. The differences are what Ray adds per run.

    .venv/bin/python docs/scripts/ray_overhead.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import ray

from attnq.config import load_task
from attnq.experiments.executors import RayExecutor, _execute_on_worker
from attnq.experiments.jobs import RunJob
from attnq.experiments.state import read_state
from attnq.registry import load_plugins

TASKS = Path(__file__).resolve().parents[2] / "tasks"
SMALL = [
    "trainer.max_env_steps=2000",
    "trainer.compile=false",
    "trainer.progress_bar=false",
    "eval.episodes=20",
    "eval.every_env_steps=0",
    "learner.learning_starts=500",
]


def job(root: Path, seed: int) -> RunJob:
    task = load_task(TASKS / "sepsis.yaml", [*SMALL, f"seed={seed}"])
    return RunJob(task.to_dict(), str(root / f"seed{seed}"))


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    started = time.time()
    executor = RayExecutor(num_cpus=2)
    executor.connect()
    print(f"ray.init on this machine: {time.time() - started:.1f} s (once per command)")
    remote = ray.remote(_execute_on_worker)
    for kind, seeds in (("fresh workers", (0, 1)), ("warmed workers", (3, 4))):
        if kind == "warmed workers":
            ray.shutdown()
            executor = RayExecutor(num_cpus=2)
            executor.start()
            time.sleep(10)  # the driver's planning, during which the workers load attnq
        jobs = [job(root, seed) for seed in seeds]
        submitted = time.time()
        ray.get([remote.options(num_cpus=1).remote(j, "cpu") for j in jobs])
        for j in jobs:
            print(
                f"ray, {kind}: {j.label} submitted -> first env step "
                f"{read_state(Path(j.run_dir)).fit_started - submitted:.1f} s"
            )
    ray.shutdown()
    host = load_plugins()
    serial = job(root, 2)
    begun = time.time()
    serial.execute(host, say=lambda line: None)
    print(
        f"serial: {serial.label} job start -> first env step "
        f"{read_state(Path(serial.run_dir)).fit_started - begun:.1f} s"
    )


if __name__ == "__main__":
    main()
