"""Finding task files: by path, or by name in the task folders.

A name ``NAME`` resolves to the first ``NAME.yaml`` found in: ``$ATTNQ_TASK_PATH`` (``:``-separated
folders), ``./tasks``, the attnq checkout's own ``tasks/``, then each domain's ``task_dirs``.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from attnq.errors import TaskFileError
from attnq.registry import PluginHost

TASK_PATH_ENV_VAR = "ATTNQ_TASK_PATH"
# platform/attnq/catalog.py -> repository root; holds tasks/ in a source checkout.
CHECKOUT_TASKS = Path(__file__).resolve().parents[2] / "tasks"


def task_dirs(host: PluginHost | None) -> list[Path]:
    dirs = [Path(p) for p in os.environ.get(TASK_PATH_ENV_VAR, "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "tasks", CHECKOUT_TASKS]
    if host is not None:
        for domain in host.registry:
            dirs.extend(domain.task_dirs)
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def find_task(name_or_path: str, host: PluginHost | None) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists() or os.sep in name_or_path:
        if not path.is_file():
            raise TaskFileError(f"task file {path} does not exist")
        return path
    for folder in task_dirs(host):
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{name_or_path}{suffix}"
            if candidate.is_file():
                return candidate
    known = ", ".join(sorted(available_tasks(host))) or "none"
    raise TaskFileError(
        f"unknown task {name_or_path!r}; known tasks: {known}. Give a task name or a path to a .yaml file"
    )


def available_tasks(host: PluginHost | None) -> dict[str, tuple[str, Path]]:
    """Task name -> (domain, file) for every readable task file in the task folders."""
    tasks: dict[str, tuple[str, Path]] = {}
    for folder in task_dirs(host):
        for file in sorted(folder.glob("*.y*ml")):
            try:
                data = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(data, dict) and "domain" in data:
                tasks.setdefault(file.stem, (str(data["domain"]), file))
    return tasks
