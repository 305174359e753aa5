"""Hook specifications: the whole plugin API of attnq lives in this module.

A domain plugin is a module (or object) with functions decorated by ``attnq.hookimpl`` whose names
match the specs below. Register it under the entry-point group ``attnq.plugins`` in your
distribution's ``pyproject.toml``::

    [project.entry-points."attnq.plugins"]
    gridworld = "attnq_gridworld.plugin"

The built-in domains (driving, ...) are registered through the very same entry points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from attnq.registry import DomainRegistry

PROJECT_NAME = "attnq"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def attnq_register_domains(registry: DomainRegistry) -> None:
    """Register this plugin's domains by calling ``registry.add(DomainSpec(...))``.

    Called once per plugin when attnq loads its plugins (every plugin is called; the return value
    is ignored). A plugin may add several domains. Adding a domain whose name is already taken is
    an error that names both plugins, so two plugins never silently shadow each other.

    :param registry: the :class:`attnq.registry.DomainRegistry` to add to.
    """
