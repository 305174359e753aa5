"""Plugin discovery: entry points -> pluggy -> a registry of domains.

Loading is explicit (``load_plugins()``), never an import side effect, and each call builds a fresh
plugin manager so tests can register their own plugins without leaking state. A plugin that fails
to import is recorded with its error and the install command that fixes it; the others still load.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

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
        check_domain_spec(domain, self.current_plugin)
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
            raise PluginError(
                f"unknown domain {name!r}; loaded domains: {known}. Run `attnq plugins` to see why a plugin is missing"
            ) from None

    def owner(self, name: str) -> str:
        return self._owners[name]

    def remove_plugin(self, plugin: str) -> None:
        """Forget every domain ``plugin`` added (it failed half-way through registering)."""
        for name in [n for n, owner in self._owners.items() if owner == plugin]:
            del self._domains[name], self._owners[name]

    def __iter__(self):
        return iter(self._domains.values())

    def __contains__(self, name: object) -> bool:
        return name in self._domains


class MalformedDomain(PluginError):
    """A plugin registered something that is not a well-formed DomainSpec: that plugin is not loaded."""


_CALLABLE_FIELDS = ("make_env", "make_encoder", "make_reward_adapter")
_OPTIONAL_CALLABLE_FIELDS = ("exact_return", "action_names", "make_vector_env")


def check_domain_spec(domain: object, plugin: str) -> None:
    """The fields of a registered domain have the types the core relies on, or the plugin is refused."""
    from collections.abc import Mapping

    from pydantic import BaseModel

    def refuse(field_name: str, problem: str, fix: str) -> MalformedDomain:
        return MalformedDomain(f"plugin {plugin!r}: DomainSpec.{field_name} {problem}; fix: {fix}")

    if not isinstance(domain, DomainSpec):
        raise MalformedDomain(
            f"plugin {plugin!r} registered {domain!r} ({type(domain).__name__}); "
            "fix: call registry.add(DomainSpec(...)) with attnq.DomainSpec"
        )
    if not isinstance(domain.name, str) or not domain.name.strip():
        raise refuse("name", f"is {domain.name!r}", "give the domain a non-empty name")
    for name in _CALLABLE_FIELDS:
        if not callable(getattr(domain, name)):
            raise refuse(name, f"is {getattr(domain, name)!r}, not a function", "pass the factory function itself")
    for name in _OPTIONAL_CALLABLE_FIELDS:
        value = getattr(domain, name)
        if value is not None and not callable(value):
            raise refuse(name, f"is {value!r}, not a function", "pass a function or leave it out")
    if not isinstance(domain.baselines, Mapping) or not all(
        isinstance(k, str) and callable(v) for k, v in domain.baselines.items()
    ):
        raise refuse(
            "baselines", f"is {domain.baselines!r}", "give a dict of name -> factory(context, seed), or leave it out"
        )
    if not isinstance(domain.task_dirs, (tuple, list)) or not all(
        isinstance(d, (str, os.PathLike)) for d in domain.task_dirs
    ):
        raise refuse("task_dirs", f"is {domain.task_dirs!r}", "give a tuple of folders (Path objects), or leave it out")
    if not (isinstance(domain.options_model, type) and issubclass(domain.options_model, BaseModel)):
        raise refuse(
            "options_model", f"is {domain.options_model!r}", "give a pydantic BaseModel class, or leave it out"
        )


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
    plugin_distributions: dict[str, str] = field(default_factory=dict)  # plugin name -> distribution that ships it


def _install_hint(entry_point: EntryPoint, exc: BaseException | None = None) -> str:
    """What to do about a plugin that failed to import: install what is missing, or fix its code."""
    dist = entry_point.dist.name if entry_point.dist is not None else None
    built_in = dist is None or dist == "attnq"
    install = f'pip install "attnq[{entry_point.name}]"' if built_in else f'pip install "{dist}"'
    own_module = entry_point.value.split(":")[0].split(".")[0]
    if exc is None or (isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == own_module):
        return install  # the plugin's own code is not there: (re)install it
    if isinstance(exc, ModuleNotFoundError):  # installed, but a library it imports is not
        return install if built_in else f'pip install "{exc.name}" (a dependency of {dist}), or reinstall {dist}'
    # installed and importable, but its code fails: installing again would not help
    return f"the plugin's own code fails on import ({type(exc).__name__}); fix it in {dist or entry_point.value}"


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
            if entry_point.dist is not None:
                host.plugin_distributions[entry_point.name] = entry_point.dist.name
            try:
                candidates.append((entry_point.name, entry_point.load()))
            except Exception as exc:  # a broken plugin must not take the others down
                host.failures.append(
                    PluginFailure(entry_point.name, f"{type(exc).__name__}: {exc}", _install_hint(entry_point, exc))
                )
    candidates.extend((n, p) for n, p in extra_plugins if n not in disabled)
    for name, plugin in candidates:
        if pm.has_plugin(name):
            continue
        try:
            pm.register(plugin, name=name)
        except Exception as exc:  # pluggy rejects malformed hook implementations here
            host.failures.append(
                PluginFailure(name, f"{type(exc).__name__}: {exc}", "fix the plugin's hook implementations")
            )
    _drop_malformed_plugins(pm, host)
    # Called plugin by plugin (not as one hook call) so that one failing plugin is isolated.
    for impl in pm.hook.attnq_register_domains.get_hookimpls():  # in registration order
        name = impl.plugin_name
        host.registry.current_plugin = name
        try:
            impl.function(registry=host.registry)
            host.loaded.append(name)
        except MalformedDomain as exc:
            host.registry.remove_plugin(name)
            host.failures.append(PluginFailure(name, str(exc), str(exc).rpartition("fix: ")[2]))
        except PluginError:
            raise  # two plugins claiming one domain name: loud, naming both
        except Exception as exc:
            host.registry.remove_plugin(name)
            host.failures.append(
                PluginFailure(
                    name,
                    f"{type(exc).__name__}: {exc}",
                    "the plugin raised while registering; report it to its authors",
                )
            )
    return host


def _drop_malformed_plugins(pm: pluggy.PluginManager, host: PluginHost) -> None:
    """Unregister, as failures, plugins with a hook name attnq does not define (a misspelling) and
    plugins that implement no hook (a forgotten ``@attnq.hookimpl``); the others load."""
    hooks = ", ".join(name for name in dir(hookspecs) if name.startswith("attnq_"))
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            pm.unregister(exc.plugin)
            host.failures.append(PluginFailure(name, f"unknown hook: {exc}", f"name the hook function one of: {hooks}"))
    for name, plugin in list(pm.list_name_plugin()):
        if plugin is not None and not pm.get_hookcallers(plugin):
            pm.unregister(plugin)
            host.failures.append(
                PluginFailure(
                    name,
                    "the plugin implements no attnq hook",
                    "decorate its attnq_register_domains function with @attnq.hookimpl",
                )
            )
