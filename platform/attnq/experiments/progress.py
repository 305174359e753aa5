"""One live view of an experiment: runs done, running and queued, each running run's env steps, an ETA.

It reads each run's state file, so it sees runs trained in this process, in Ray workers on this
machine, and on other nodes that share the runs folder alike. A line is printed every
``interval`` seconds while something changes, and whenever a job finishes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from attnq.experiments.jobs import Job, Outcome, RunJob
from attnq.experiments.state import RunState, read_state


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class ProgressView:
    """:param jobs: every job of the experiment, in plan order
    :param title: what the lines are about, e.g. "report quick"
    :param interval: seconds between periodic lines (0: only when a job finishes)
    """

    def __init__(
        self,
        jobs: list[Job],
        title: str,
        interval: float = 30.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs, self.title, self.interval = jobs, title, interval
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started_at = clock()
        self.done: dict[str, Outcome] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_line = ""

    # ----- events from the executor -----------------------------------------------------------
    def finished(self, outcome: Outcome) -> None:
        self.done[outcome.label] = outcome
        where = f" on {outcome.where}" if outcome.where else ""
        self.say(f"{outcome.label}: {outcome.action} ({_minutes(outcome.seconds)}{where})")
        self.say(self.line())

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    # ----- the summary line -------------------------------------------------------------------
    def _states(self) -> dict[str, RunState | None]:
        return {
            job.label: read_state(Path(job.run_dir))
            for job in self.jobs
            if isinstance(job, RunJob) and job.label not in self.done
        }

    def line(self) -> str:
        states = self._states()
        runs = [job for job in self.jobs if isinstance(job, RunJob)]
        others = [job for job in self.jobs if not isinstance(job, RunJob)]
        # a run is going when its state file was written during this command and its job is not done
        going = {
            label: state
            for label, state in states.items()
            if state is not None and state.updated >= self.started_at - 1
        }
        done_runs = sum(job.label in self.done for job in runs)
        queued = len(runs) - done_runs - len(going)
        line = f"[{self.title}] runs: {done_runs}/{len(runs)} done, {len(going)} running, {queued} queued"
        if going:
            line += " (" + "; ".join(f"{label} {self._doing(state)}" for label, state in sorted(going.items())) + ")"
        if others:
            line += f"; baselines: {sum(job.label in self.done for job in others)}/{len(others)} done"
        eta = self.eta(states, max(1, len(going)))
        return line + (f"; ETA {eta}" if eta else "")

    @staticmethod
    def _doing(state: RunState) -> str:
        if state.status == "running":
            return f"{state.live_env_steps:,}/{state.max_env_steps:,}"
        return "evaluating" if state.status == "finished" else state.status

    def eta(self, states: dict[str, RunState | None], parallel: int) -> str | None:
        """Remaining env steps of unfinished runs over their task's observed speed, spread over the
        runs going at once. None while some task has no speed yet."""
        rates: dict[str, float] = {}
        for job in self.jobs:
            state = states.get(job.label)
            if isinstance(job, RunJob) and state is not None and state.env_steps_per_second:
                rates.setdefault(job.task["name"], state.env_steps_per_second)
        seconds = 0.0
        for job in self.jobs:
            if not isinstance(job, RunJob) or job.label in self.done:
                continue
            state = states.get(job.label)
            rate = rates.get(job.task["name"])
            if rate is None:
                return None
            done = state.live_env_steps if state is not None else 0
            seconds += max(job.max_env_steps - done, 0) / rate
        return _minutes(seconds / parallel) if seconds else None

    # ----- periodic printing ------------------------------------------------------------------
    def __enter__(self) -> ProgressView:
        self.say(
            f"[{self.title}] {len(self.jobs)} jobs: "
            f"{sum(isinstance(j, RunJob) for j in self.jobs)} runs, "
            f"{sum(not isinstance(j, RunJob) for j in self.jobs)} baselines"
        )
        if self.interval > 0:
            self._thread = threading.Thread(target=self._loop, name="attnq-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            line = self.line()
            if line != self._last_line:
                self.say(line)
                self._last_line = line
