"""A run's state file, ``RUN/state.json``: how far it trained, whether it finished, where it runs.

Written beside the checkpoints by the training loop (at start, at every checkpoint, every few
seconds as a heartbeat, and at the end), so that planning, resuming and the progress view read a
few hundred bytes instead of a checkpoint with its replay buffer. ``env_steps`` counts what the
last checkpoint holds, which is what a resume starts from; ``live_env_steps`` what the loop has done.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from attnq.checkpoints import (
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    POLICY_CHECKPOINT,
    atomic_write_text,
    load_checkpoint_file,
)

STATE_FILE = "state.json"
WHERE_ENV_VAR = "ATTNQ_WORKER"  # set by an executor's worker: where its jobs run (a Ray node)
Status = Literal["new", "running", "interrupted", "failed", "finished"]


@dataclass
class RunState:
    """What a run folder holds, in a form that costs nothing to read."""

    status: Status = "new"
    env_steps: int = 0  # in the last checkpoint: where a resume starts
    live_env_steps: int = 0  # done by the training loop so far (progress)
    max_env_steps: int = 0
    wall_seconds: float = 0.0  # training wall time, every fit of the run together
    env_steps_per_second: float | None = None  # of the current or last fit
    fit_started: float | None = None  # wall-clock time the current or last fit began (just before its first env step)
    learning_hash: str = ""
    where: str = field(default_factory=lambda: os.environ.get(WHERE_ENV_VAR) or socket.gethostname())
    pid: int = field(default_factory=os.getpid)
    updated: float = field(default_factory=time.time)
    error: str | None = None

    def write(self, run_dir: Path) -> None:
        self.updated = time.time()
        atomic_write_text(run_dir / STATE_FILE, json.dumps(asdict(self), indent=1))


def read_state(run_dir: Path) -> RunState | None:
    """The run's state, or None for a folder with none (a new run, or one older than state files).

    A run trained before state files existed is read once from its checkpoint and given one."""
    path = run_dir / STATE_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return RunState(**{k: v for k, v in data.items() if k in RunState.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            pass  # torn by hand or by an old version: rebuilt from the checkpoint below
    checkpoint = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if not checkpoint.is_file():
        return None
    saved = load_checkpoint_file(checkpoint)
    counters = saved.get("attnq", {})
    steps = int(counters.get("env_steps", 0))
    budget = int(saved["hyper_parameters"]["task"]["trainer"]["max_env_steps"])
    from attnq.config import validate_task
    from attnq.experiments.reuse import learning_hash

    task = validate_task(saved["hyper_parameters"]["task"], str(checkpoint))
    state = RunState(
        status="finished" if steps >= budget else "interrupted",
        env_steps=steps,
        live_env_steps=steps,
        max_env_steps=budget,
        wall_seconds=float(counters.get("wall_seconds", 0.0)),
        learning_hash=learning_hash(task),
        where="",
        pid=0,
    )
    state.write(run_dir)
    return state


def trained_steps(run_dir: Path) -> int:
    """Env steps a run's last checkpoint holds; -1 when it has none (also for a run killed before
    its first checkpoint, whose state file says it was running: it trains again from the start).

    A finished run kept as its exported policy alone (committed beside a report, checkpoints not)
    counts as trained that far: it can be evaluated and reported, not trained further."""
    state = read_state(run_dir)
    if state is None:
        return -1
    if (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file():
        return state.env_steps
    if state.status == "finished" and (run_dir / POLICY_CHECKPOINT).is_file():
        return state.env_steps
    return -1


def policy_only(run_dir: Path) -> bool:
    """A run that holds its exported policy but no checkpoint to resume from."""
    return (run_dir / POLICY_CHECKPOINT).is_file() and not (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file()
