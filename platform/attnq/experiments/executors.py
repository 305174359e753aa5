"""Where jobs run: one after another in this process, or as Ray tasks across cores, GPUs and nodes.

Both executors run the same jobs on the same runs folder, so a report started with one can be
finished with the other, and both give the same figures for the same seeds. Ray is imported only
when the Ray executor is chosen.

The Ray executor starts a local Ray (every core of this machine) unless given the address of a
running cluster (``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the others,
every node seeing the runs folder at the same path). Each job is one Ray task whose CPU request
comes from its task (torch threads plus env worker processes, at most a node's cores) and whose
GPU request is a fraction, so several small runs share a GPU. A task whose worker dies is retried;
the retry resumes from the run's last checkpoint, so no run is trained twice or counted twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from attnq.errors import AttnqError, RunInterrupted
from attnq.experiments.jobs import Job, Outcome, RunJob
from attnq.experiments.progress import ProgressView
from attnq.experiments.state import WHERE_ENV_VAR
from attnq.registry import PluginHost

EXECUTORS = ("serial", "ray")
RAY_EXTRA_HINT = 'pip install "attnq[ray]" (or: pip install "ray[tune]==2.60.0")'
CANCEL_GRACE_SECONDS = 60.0  # how long cancelled runs get to write their checkpoints


class Executor(Protocol):
    name: str

    def start(self) -> None:
        """Get ready to run jobs (called before planning, so that start-up overlaps it)."""

    def run(self, jobs: list[Job], progress: ProgressView) -> list[Outcome]: ...


class SerialExecutor:
    """Every job in this process, in plan order (the default; no extra dependency)."""

    name = "serial"

    def __init__(self, host: PluginHost | None = None) -> None:
        self.host = host

    def start(self) -> None:
        pass

    def run(self, jobs: list[Job], progress: ProgressView) -> list[Outcome]:
        outcomes = []
        for job in jobs:
            outcome = job.execute(self.host, say=progress.say)
            progress.finished(outcome)
            outcomes.append(outcome)
        return outcomes


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise AttnqError(f"--executor ray needs Ray, which is not installed; fix: {RAY_EXTRA_HINT}") from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with the fix, when nothing listens at a cluster address (Ray itself retries for a minute)."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise AttnqError(
            f"--ray-address {address!r} is not HOST:PORT; fix: give the address `ray start --head` printed, "
            "e.g. 10.0.0.5:6379"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise AttnqError(
            f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); fix: start one "
            "with `ray start --head` on that machine, check the address and firewall, or leave --ray-address "
            "out to use this machine alone"
        ) from None


@contextlib.contextmanager
def _keep_sigterm_handler() -> Iterator[None]:
    """Ray's core installs a SIGTERM handler that kills the driver on the spot; keep ours, which stops
    the jobs so that each writes its checkpoint, and says how to resume."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and callable(previous):
            signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class Placement:
    """Ray resources of one job."""

    num_cpus: float
    num_gpus: float

    @property
    def device(self) -> str:
        return "gpu" if self.num_gpus > 0 else "cpu"


def cpus_wanted(job: Job) -> float:
    """Torch threads plus one core per env worker process (async vector envs); baselines take one."""
    if not isinstance(job, RunJob):
        return 1.0
    env, trainer = job.task["env"], job.task["trainer"]
    workers = env["num_envs"] if env["vectorization"] == "async" and env["num_envs"] > 1 else 0
    return float(max(1, trainer["torch_threads"]) + workers)


def wants_gpu(job: Job) -> bool:
    return isinstance(job, RunJob) and job.task["trainer"]["accelerator"] != "cpu"


class RayExecutor:
    """:param address: a running cluster's address (``HOST:PORT`` or ``auto``); None starts Ray on this machine
    :param num_cpus: cores a local Ray may use (default: all)
    :param cpus_per_run: CPUs each run asks for (default: from its task, at most a node's cores)
    :param gpus_per_run: GPUs each run asks for, a fraction to share one (default: 0.25 where the cluster has GPUs)
    :param max_retries: times a job is retried after its worker dies
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_run: float | None = None,
        gpus_per_run: float | None = None,
        max_retries: int = 3,
    ) -> None:
        self.address, self.num_cpus = address, num_cpus
        self.cpus_per_run, self.gpus_per_run, self.max_retries = cpus_per_run, gpus_per_run, max_retries
        if cpus_per_run is not None and cpus_per_run <= 0:
            raise AttnqError(f"--cpus-per-run must be positive (got {cpus_per_run})")
        if gpus_per_run is not None and gpus_per_run < 0:
            raise AttnqError(f"--gpus-per-run must be 0 or more (got {gpus_per_run})")

    # ----- connecting and placing ---------------------------------------------------------------
    def connect(self) -> Any:
        ray = import_ray()
        if ray.is_initialized():
            return ray
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        with _keep_sigterm_handler():
            self._init(ray)
        return ray

    def _init(self, ray: Any) -> None:
        if self.address:
            check_reachable(self.address)
            try:
                ray.init(address=self.address, logging_level="WARNING", log_to_driver=False)
            except (ConnectionError, RuntimeError) as exc:
                raise AttnqError(
                    f"--ray-address {self.address}: could not join the Ray cluster ({str(exc).splitlines()[0]}); "
                    "fix: check that `ray status` works on that machine and that both run the same Ray "
                    "and Python versions"
                ) from None
        else:
            # Ray turns token authentication on for a new local cluster and says so at every start;
            # that notice is not about the run, so it is left out (the setting itself is kept)
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            # A small object store: jobs exchange only small records; the memory belongs to the runs.
            ray.init(
                num_cpus=self.num_cpus,
                include_dashboard=False,
                logging_level="WARNING",
                log_to_driver=False,
                object_store_memory=256 * 1024 * 1024,
            )

    def placements(self, ray: Any, jobs: list[Job]) -> list[Placement]:
        """Each job's request, checked against the nodes: one no node can satisfy is refused here."""
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        most_cpus = max((node.get("CPU", 0.0) for node in nodes), default=0.0)
        most_gpus = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
        placements = []
        for job in jobs:
            cpus = self.cpus_per_run if self.cpus_per_run is not None else min(cpus_wanted(job), most_cpus)
            gpus = 0.0
            if wants_gpu(job):
                gpus = self.gpus_per_run if self.gpus_per_run is not None else (0.25 if most_gpus > 0 else 0.0)
            if cpus > most_cpus or gpus > most_gpus:
                raise AttnqError(
                    f"{job.label} asks for {cpus:g} CPUs and {gpus:g} GPUs, but the largest Ray node has "
                    f"{most_cpus:g} CPUs and {most_gpus:g} GPUs; fix: lower --cpus-per-run / --gpus-per-run "
                    "or add a node that has them"
                )
            placements.append(Placement(cpus, gpus))
        return placements

    def start(self) -> None:
        """Connect, and start one worker per CPU that imports attnq and loads the plugins, so the
        seconds a fresh worker takes pass while the driver plans (Ray reuses idle workers)."""
        ray = self.connect()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        warm = ray.remote(_warm_worker)
        self._warming = [warm.options(num_cpus=1).remote() for _ in range(cpus)]

    # ----- running ------------------------------------------------------------------------------
    def run(self, jobs: list[Job], progress: ProgressView) -> list[Outcome]:
        ray = self.connect()
        placements = self.placements(ray, jobs)
        remote = ray.remote(_execute_on_worker)
        pending: dict[Any, Job] = {}
        for job, placement in zip(jobs, placements):
            ref = remote.options(
                num_cpus=placement.num_cpus,
                num_gpus=placement.num_gpus,
                max_retries=self.max_retries,
                retry_exceptions=False,
                name=job.label,
            ).remote(job, placement.device)
            pending[ref] = job
        outcomes: dict[str, Outcome] = {}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in done:
                    job = pending.pop(ref)
                    outcome = self._result(ray, ref, job)
                    outcomes[job.label] = outcome
                    progress.finished(outcome)
        except BaseException:
            self._cancel(ray, list(pending))
            raise
        return [outcomes[job.label] for job in jobs]

    @staticmethod
    def _result(ray: Any, ref: Any, job: Job) -> Outcome:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, (AttnqError, RunInterrupted)):
                raise cause from None
            raise RuntimeError(f"{job.label} failed on a Ray worker:\n{exc}") from None
        except ray.exceptions.WorkerCrashedError as exc:
            raise AttnqError(
                f"{job.label}: its Ray worker died on every try ({exc}); its run folder keeps the last "
                "checkpoint; fix: see the worker logs under /tmp/ray/session_latest/logs, then run the "
                "same command again to resume"
            ) from None

    @staticmethod
    def _cancel(ray: Any, refs: list[Any]) -> None:
        """Ask running jobs to stop (each writes a checkpoint), give them a while, then drop the rest."""
        for ref in refs:
            ray.cancel(ref)
        deadline = time.time() + CANCEL_GRACE_SECONDS
        remaining = list(refs)
        while remaining and time.time() < deadline:
            _, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=1.0)


def _warm_worker() -> None:
    from attnq.experiments.jobs import worker_host

    worker_host()


def _execute_on_worker(job: Job, device: str) -> Outcome:
    """A job inside a Ray worker: tagged with its node, on the device Ray placed it on."""
    import ray

    os.environ[WHERE_ENV_VAR] = f"ray node {ray.get_runtime_context().get_node_id()[:12]}"
    quiet = lambda line: None  # noqa: E731  (the driver's progress view reports jobs)
    return job.execute(None, say=quiet, device=device)


def make_executor(
    name: str,
    host: PluginHost | None = None,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_run: float | None = None,
    gpus_per_run: float | None = None,
) -> Executor:
    if name == "serial":
        if ray_address or cpus_per_run is not None or gpus_per_run is not None:
            raise AttnqError("--ray-address, --cpus-per-run and --gpus-per-run need --executor ray")
        return SerialExecutor(host)
    if name == "ray":
        import_ray()
        return RayExecutor(ray_address, num_cpus, cpus_per_run, gpus_per_run)
    raise AttnqError(f"unknown executor {name!r}; use one of: {', '.join(EXECUTORS)}")
