"""Plugin discovery: entry points -> pluggy -> a registry of domains.

Loading is explicit (``load_plugins()``), never an import side effect, and each call builds a fresh
plugin manager so tests can register their own plugins without leaking state. A plugin that fails
to import is recorded with its error and the install command that fixes it; the others still load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Iterable

import pluggy

from attnq import hookspecs
from attnq.domain import DomainSpec
from attnq.errors import PluginError

ENTRY_POINT_GROUP = "attnq.plugins"
DISABLE_ENV_VAR = "ATTNQ_DISABLE_PLUGINS"


class DomainRegistry:
    """Domains by name. Duplicate names are an error naming both owners."""

    def __init__(self) -> None:
        self._domains: dict[str, DomainSpec] = {}
        self._owners: dict[str, str] = {}
        self.current_plugin = "<direct>"

    def add(self, domain: DomainSpec) -> None:
        if not isinstance(domain, DomainSpec):
            raise PluginError(f"plugin {self.current_plugin!r} registered {domain!r}; expected a DomainSpec")
        if domain.name in self._domains:
            raise PluginError(
                f"domain {domain.name!r} is registered twice: by plugin {self._owners[domain.name]!r} "
                f"and by plugin {self.current_plugin!r}; uninstall or disable one ({DISABLE_ENV_VAR}=name)"
            )
        self._domains[domain.name] = domain
        self._owners[domain.name] = self.current_plugin

    def get(self, name: str) -> DomainSpec:
        try:
            return self._domains[name]
        except KeyError:
            known = ", ".join(sorted(self._domains)) or "none"
            raise PluginError(f"unknown domain {name!r}; loaded domains: {known}. Run `attnq plugins` to see why a plugin is missing") from None

    def owner(self, name: str) -> str:
        return self._owners[name]

    def __iter__(self):
        return iter(self._domains.values())

    def __contains__(self, name: object) -> bool:
        return name in self._domains


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, with the command that should fix it."""

    name: str
    error: str
    install_hint: str


@dataclass
class PluginHost:
    """The outcome of loading plugins: the registry plus what failed."""

    registry: DomainRegistry
    loaded: list[str] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)


def _install_hint(entry_point: EntryPoint) -> str:
    dist = entry_point.dist.name if entry_point.dist is not None else None
    if dist is None or dist == "attnq":
        return f'pip install "attnq[{entry_point.name}]"'
    return f'pip install "{dist}"'


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(
    extra_plugins: Iterable[tuple[str, object]] = (),
    use_entry_points: bool = True,
) -> PluginHost:
    """Discover plugins and collect their domains.

    :param extra_plugins: ``(name, module_or_object)`` pairs registered in addition to entry points
        (tests use this to add a plugin without installing it).
    :param use_entry_points: load the ``attnq.plugins`` entry-point group.
    """
    disabled = {n.strip() for n in os.environ.get(DISABLE_ENV_VAR, "").split(",") if n.strip()}
    pm = make_plugin_manager()
    host = PluginHost(registry=DomainRegistry())
    candidates: list[tuple[str, object]] = []
    if use_entry_points:
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in disabled:
                continue
            try:
                candidates.append((entry_point.name, entry_point.load()))
            except Exception as exc:  # a broken plugin must not take the others down
                host.failures.append(PluginFailure(entry_point.name, f"{type(exc).__name__}: {exc}", _install_hint(entry_point)))
    candidates.extend((n, p) for n, p in extra_plugins if n not in disabled)
    for name, plugin in candidates:
        if pm.has_plugin(name):
            continue
        try:
            pm.register(plugin, name=name)
        except Exception as exc:  # pluggy rejects malformed hook implementations here
            host.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}", "fix the plugin's hook implementations"))
    pm.check_pending()  # a misspelled hook name fails loudly instead of being ignored
    # Called plugin by plugin (not as one hook call) so that one failing plugin is isolated.
    for impl in pm.hook.attnq_register_domains.get_hookimpls():  # in registration order
        name = impl.plugin_name
        host.registry.current_plugin = name
        try:
            impl.function(registry=host.registry)
            host.loaded.append(name)
        except PluginError:
            raise
        except Exception as exc:
            host.failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}", "the plugin raised while registering; report it to its authors"))
    return host

