"""Whether a saved run may stand for a task, derived from each config field's declared role.

A field's role (:data:`attnq.config.Role`) says what changing it changes. A saved run is reused
(reported, resumed) only when every ``learns`` field matches; a larger ``budget`` is reached by
resuming; ``evaluates`` fields only redo the final evaluation; ``speed`` and ``describes`` fields
never matter. Nor does a field that only the other torso reads (``model.dropout`` for an MLP run),
so a change to the Transformer leaves the MLP ablation's runs standing. The learning hash condenses
the ``learns`` fields so that state files compare cheaply.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from attnq.config import BUDGET, LEARNS, Role, TaskConfig, leaf_fields, role_of, torso_of
from attnq.errors import CheckpointError

# Named first in a refusal, so another task (or torso) is called by its name rather than by its settings.
IDENTITY_ORDER = ("name", "domain", "model.torso")


def task_differences(stored: dict[str, Any], requested: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Every dotted field where two resolved tasks differ, with the stored and the requested value."""
    differences: list[tuple[str, Any, Any]] = []
    for key in sorted(set(stored) | set(requested)):
        a, b, path = stored.get(key), requested.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            differences += task_differences(a, b, path + ".")
        elif a != b:
            differences.append((path, a, b))
    return sorted(
        differences,
        key=lambda d: (d[0] not in IDENTITY_ORDER, IDENTITY_ORDER.index(d[0]) if d[0] in IDENTITY_ORDER else 0, d[0]),
    )


def learning_values(task: TaskConfig) -> dict[str, Any]:
    """The values of every ``learns`` field that the task's torso reads, by dotted path."""
    data = task.to_dict()
    values: dict[str, Any] = {}
    for path in leaf_fields():
        if role_of(path) == LEARNS and not _unread(path, task.model.torso):
            node = data
            for part in path.split("."):
                node = node[part]
            values[path] = node
    return values


def learning_hash(task: TaskConfig) -> str:
    """A short digest of what a run learns from; equal for tasks that differ only in other roles."""
    text = json.dumps(learning_values(task), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _unread(path: str, torso: str) -> bool:
    """Whether only another torso than ``torso`` reads the field ``path``."""
    try:
        reader = torso_of(path)
    except KeyError:
        return False
    return reader is not None and reader != torso


def _role(path: str) -> Role:
    try:
        return role_of(path)
    except KeyError:
        return LEARNS  # a field the current schema lacks changed what was stored: treat it as learned


def refusal(
    stored: TaskConfig, requested: TaskConfig, allow_smaller_budget: bool = False
) -> tuple[str, Any, Any] | None:
    """The first difference that forbids using a run trained as ``stored`` for ``requested``:
    any ``learns`` field its torso reads, or (unless allowed) a budget smaller than the one already trained."""
    # Another torso is refused at model.torso, which task_differences lists before any field it reads.
    for path, was, now in task_differences(stored.to_dict(), requested.to_dict()):
        if _unread(path, requested.model.torso):
            continue
        role = _role(path)
        if role == LEARNS or (role == BUDGET and now < was and not allow_smaller_budget):
            return path, was, now
    return None


def check_resumable(stored: TaskConfig, requested: TaskConfig, source: Path) -> None:
    """``attnq train --resume``: the same learning settings; only budgets and speed may change."""
    found = refusal(stored, requested, allow_smaller_budget=True)
    if found is not None:
        path, was, now = found
        raise CheckpointError(
            f"{source} was trained with {path} = {was!r}, but the task asks for {now!r}; "
            "fix: resume with the run's own task file and --set values, or start a new run"
        )
