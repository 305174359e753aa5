"""Finding task files: by path, or by name in the task folders.

A name ``NAME`` resolves to the first ``NAME.yaml`` found in: ``$ATTNQ_TASK_PATH`` (``:``-separated
folders), ``./tasks``, the attnq checkout's own ``tasks/``, then each domain's ``task_dirs``. A name
``DOMAIN:ARG`` is the task that domain's ``make_task(ARG)`` gives (``gym:CartPole-v1``).
"""

from __future__ import annotations

import os
import tempfile
import types
import typing
from pathlib import Path

import yaml

from attnq.config import TaskConfig, load_task
from attnq.errors import PluginError, TaskFileError
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
    prefix = name_or_path.partition(":")[0]
    if (
        ":" in name_or_path
        and host is not None
        and prefix
        and not any(c in prefix for c in "/\\.")
        and not path.exists()
    ):
        return domain_task(name_or_path, host)  # DOMAIN:ARG, whose ARG may hold a '/' (a namespaced env id)
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


def domain_task(name: str, host: PluginHost) -> Path:
    """The task file for ``DOMAIN:ARG`` (``gym:CartPole-v1``), written from the domain's ``make_task``
    into a folder of generated tasks; the run's own config.yaml keeps the task it trained."""
    domain_name, _, argument = name.partition(":")
    domain = host.registry.get(domain_name)  # an unknown domain is a clear error
    if domain.make_task is None or not argument:
        raise TaskFileError(
            f"task {name!r}: domain {domain_name!r} gives no task by name; fix: write a task file (docs/plugins.md)"
        )
    path = Path(tempfile.gettempdir()) / "attnq-tasks" / f"{domain_name}-{argument.replace('/', '-')}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    from attnq.checkpoints import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(dict(domain.make_task(argument)), sort_keys=False))
    return path


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


def load_named_task(name_or_path: str, host: PluginHost | None, overrides: list[str] | None = None) -> TaskConfig:
    """The task a user names (see :func:`find_task`), with ``overrides`` applied and the file paths
    among its domain options made absolute (:func:`with_absolute_paths`)."""
    return with_absolute_paths(load_task(find_task(name_or_path, host), overrides), host)


def with_absolute_paths(task: TaskConfig, host: PluginHost | None) -> TaskConfig:
    """``task`` with every relative path among its domain options (a field its domain's options
    model types as a ``Path``) resolved from the working folder: a run's config.yaml then names the
    same files wherever ``evaluate`` or ``--resume`` is run from, and a report's runs match the task
    whichever folder it is planned from."""
    try:
        model = host.registry.get(task.domain).options_model if host is not None else None
    except PluginError:
        return task  # an unknown domain is reported, with its fix, where the task is prepared
    if model is None:
        return task
    options = dict(task.domain_options)
    for name, info in model.model_fields.items():
        value = options.get(name)
        if isinstance(value, str) and value and _is_path(info.annotation) and not Path(value).is_absolute():
            options[name] = str(Path(value).resolve())
    if options == dict(task.domain_options):
        return task
    return task.model_copy(update={"domain_options": options})


def _is_path(annotation: object) -> bool:
    """``Path``, or ``Path | None`` (``Optional[Path]``)."""
    if annotation is Path:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return Path in typing.get_args(annotation)
    return False
