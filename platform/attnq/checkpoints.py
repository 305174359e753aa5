"""Run folders and checkpoints: atomic writes, safe loads, clear errors.

A run folder holds ``config.yaml`` (the resolved task), ``checkpoints/last.ckpt`` (a Lightning
checkpoint, replay buffer included: what a resume needs), ``logs/metrics.csv`` and, once the run is
evaluated, ``policy.ckpt``: the evaluated network alone, small enough to commit beside a report, which
``attnq evaluate`` and reports load where the run's own checkpoints are gone (a task with
``eval.keep_best`` also writes ``checkpoints/best.ckpt``, which then stands for the run). Checkpoints are
loaded with ``weights_only=True``: attnq stores only tensors and plain Python values in them, so no
pickled code is ever executed. Each carries a SHA-256 of its tensors (weights, optimizer state,
replay buffer), checked on load, so a file damaged on disk is refused instead of evaluated; writes
are fsynced before they replace the old file, and temporary files a killed write left behind are
removed by the next write.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from pytorch_lightning.plugins.io import TorchCheckpointIO

from attnq.config import TaskConfig, validate_task
from attnq.errors import CheckpointError, TaskFileError

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"  # written only with eval.keep_best
POLICY_CHECKPOINT = "policy.ckpt"  # RUN/policy.ckpt: the evaluated network, no optimizer, no replay buffer
NETWORK_PREFIXES = {"online": "q_network.", "averaged": "averaged_network.", "target": "target_network."}


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


CHECKSUM_KEY = "attnq_sha256"


def tensor_digest(value: Any, digest: Any = None) -> str:
    """SHA-256 over every tensor and array in a nested checkpoint structure, in key order."""
    digest = digest or hashlib.sha256()
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            if key != CHECKSUM_KEY:
                digest.update(str(key).encode())
                tensor_digest(value[key], digest)
    elif isinstance(value, (list, tuple)):
        for item in value:
            tensor_digest(item, digest)
    elif isinstance(value, torch.Tensor):
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def remove_stale_temporaries(folder: Path, name: str) -> None:
    """Temporary files of ``name`` left by a write that was killed (one process writes a run folder)."""
    for stale in folder.glob(f".{name}.*.tmp"):
        stale.unlink(missing_ok=True)


def save_checkpoint_file(checkpoint: dict[str, Any], target: Path) -> None:
    """Checksum the tensors, then write the file atomically (fsynced, renamed into place)."""
    remove_stale_temporaries(target.parent, target.name)
    checkpoint[CHECKSUM_KEY] = tensor_digest(checkpoint)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(target, buffer.getbuffer())


def exported_prefix(weights: dict[str, Any]) -> str:
    """The network a trained agent acts with: the averaged one where the run averaged its weights."""
    averaged = any(key.startswith(NETWORK_PREFIXES["averaged"]) for key in weights)
    return NETWORK_PREFIXES["averaged" if averaged else "online"]


def export_policy(source: Path, target: Path) -> None:
    """Write the acting network of checkpoint ``source`` alone to ``target``: its task and counters,
    no optimizer state, target network or replay buffer (kilobytes to a few MB instead of up to
    hundreds). It loads like any checkpoint for evaluation and pictures, never for a resume."""
    checkpoint = load_checkpoint_file(source)
    prefix = exported_prefix(checkpoint["state_dict"])
    counters = checkpoint.get("attnq", {})
    policy = {
        "state_dict": {k: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)},
        "hyper_parameters": {"task": checkpoint["hyper_parameters"]["task"]},
        "attnq": {
            k: counters[k] for k in ("env_steps", "episodes", "wall_seconds", "data_fingerprint") if k in counters
        },
        "attnq_policy_of": source.name,
    }
    save_checkpoint_file(policy, target)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes a checksummed, fsynced file and renames it into place,
    so a killed run never leaves a torn file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint_file(checkpoint, target)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint_file(Path(path), map_location)


def load_checkpoint_file(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path} is empty (a write that never finished); fix: use the run's other checkpoint, "
            "or train the run again"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        first_line = (str(exc).splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{path} is not a readable attnq checkpoint ({type(exc).__name__}: {first_line}); "
            "fix: point to a run folder or a .ckpt written by `attnq train`"
        ) from None
    if (
        not isinstance(checkpoint, dict)
        or "hyper_parameters" not in checkpoint
        or "task" not in checkpoint.get("hyper_parameters", {})
    ):
        raise CheckpointError(f"{path} is a torch file but not an attnq checkpoint (no task in it)")
    saved = checkpoint.get(CHECKSUM_KEY)  # absent in checkpoints written before checksums
    if saved is not None and saved != tensor_digest(checkpoint):
        raise CheckpointError(
            f"{path} is corrupt: its tensors do not match the checksum written with them (damaged on "
            "disk or in a copy); fix: copy it again, use the run's other checkpoint, or train the run again"
        )
    return checkpoint


@dataclass(frozen=True)
class RunLocation:
    run_dir: Path
    checkpoint: Path


def resolve_run(path_text: str) -> RunLocation:
    """Accept a run folder (the checkpoint that stands for it: see :func:`evaluated_checkpoint`) or a
    checkpoint file."""
    path = Path(path_text)
    if path.is_dir():
        checkpoint, _ = evaluated_checkpoint(path, keeps_best(path))
        if checkpoint.is_file():
            return RunLocation(path, checkpoint)
        raise CheckpointError(
            f"{path} has neither {CHECKPOINT_DIR}/{LAST_CHECKPOINT} nor {POLICY_CHECKPOINT}; is it a run folder "
            "written by `attnq train`?"
        )
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
        return RunLocation(run_dir, path)
    raise CheckpointError(f"{path} does not exist; give a run folder (printed by `attnq train`) or a .ckpt file")


def evaluated_checkpoint(run_dir: Path, keep_best: bool) -> tuple[Path, str]:
    """The checkpoint that stands for a run, and which it is: the best one when its task keeps it
    (``eval.keep_best``, chosen on the validation episodes), its last one otherwise, and also when
    the budget ended before the first validation round; the exported policy of a run that holds
    nothing else. Reports evaluate it, and ``attnq evaluate`` and ``explain`` of the folder load it."""
    best = run_dir / CHECKPOINT_DIR / BEST_CHECKPOINT
    if keep_best and best.is_file():
        return best, "best"
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if last.is_file():
        return last, "last"
    return run_dir / POLICY_CHECKPOINT, "policy"


def keeps_best(run_dir: Path) -> bool:
    """Whether the run's task keeps its best checkpoint (``eval.keep_best`` in its config.yaml)."""
    if not (run_dir / CONFIG_FILE).is_file():
        return False
    config = read_run_config(run_dir)
    section = config.get("eval") if isinstance(config, dict) else None
    return isinstance(section, dict) and bool(section.get("keep_best"))


def task_from_checkpoint(checkpoint: dict[str, Any], source: Path) -> TaskConfig:
    try:
        return validate_task(checkpoint["hyper_parameters"]["task"], f"{source} (stored task)")
    except TaskFileError as exc:
        raise CheckpointError(str(exc)) from None


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {CONFIG_FILE}; is it a run folder written by `attnq train`?")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CheckpointError(
            f"{path} is not valid YAML ({exc}); fix: restore it, or pass one of the run's checkpoint files, "
            "which store the task"
        ) from None
