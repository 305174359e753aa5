"""Plugin discovery: entry points, isolation of broken plugins, duplicate names, hook validation."""

from __future__ import annotations

import inspect
import re
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from attnq import hookimpl, hookspecs
from attnq.domain import DomainSpec, SumRewardAdapter
from attnq.errors import PluginError
from attnq.registry import ENTRY_POINT_GROUP, load_plugins

REPO = Path(__file__).resolve().parents[1]


def _dummy_domain(name: str) -> DomainSpec:
    return DomainSpec(
        name=name,
        description="test",
        make_env=lambda *a: None,
        make_encoder=lambda *a: None,
        make_reward_adapter=lambda c: SumRewardAdapter(),
    )


def _plugin_adding(*names: str) -> types.SimpleNamespace:
    @hookimpl
    def attnq_register_domains(registry):
        for name in names:
            registry.add(_dummy_domain(name))

    return types.SimpleNamespace(attnq_register_domains=attnq_register_domains)


@pytest.mark.parametrize(
    ("module_text", "hint"),
    [
        ("import attnq_no_such_dependency\n", "attnq[brittle]"),  # a library the plugin needs is missing
        ("raise RuntimeError('bug at import')\n", "the plugin's own code fails on import (RuntimeError)"),
        ("def broken(:\n", "the plugin's own code fails on import (SyntaxError)"),
    ],
)
def test_an_installed_plugin_that_fails_on_import_gets_the_right_fix(tmp_path, monkeypatch, module_text, hint):
    """Installing again is the fix only when something is not installed; a bug needs fixing."""
    import attnq.registry as registry_module

    (tmp_path / "attnq_brittle_plugin.py").write_text(module_text)
    monkeypatch.syspath_prepend(str(tmp_path))
    real = registry_module.entry_points(group=ENTRY_POINT_GROUP)
    brittle = EntryPoint(name="brittle", value="attnq_brittle_plugin", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [*real, brittle])
    host = load_plugins()
    [failure] = host.failures
    assert failure.name == "brittle" and hint in failure.install_hint and "highway" in host.registry


def test_builtin_highway_plugin_is_found_through_its_entry_point():
    host = load_plugins()
    assert "highway" in host.registry
    assert host.registry.owner("highway") == "highway"
    assert "highway" in host.loaded


def test_plugin_that_fails_to_import_is_reported_and_others_still_load(monkeypatch):
    import attnq.registry as registry_module

    real = registry_module.entry_points(group=ENTRY_POINT_GROUP)
    broken = EntryPoint(name="broken", value="attnq_no_such_module.plugin", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [*real, broken])
    host = load_plugins()
    assert "highway" in host.registry
    [failure] = host.failures
    assert failure.name == "broken"
    assert "ModuleNotFoundError" in failure.error and "attnq_no_such_module" in failure.error
    assert failure.install_hint == 'pip install "attnq[broken]"'


def test_plugin_raising_during_registration_is_isolated():
    @hookimpl
    def attnq_register_domains(registry):
        raise RuntimeError("boom")

    host = load_plugins(
        extra_plugins=[
            ("exploding", types.SimpleNamespace(attnq_register_domains=attnq_register_domains)),
            ("fine", _plugin_adding("fine_domain")),
        ],
        use_entry_points=False,
    )
    assert "fine_domain" in host.registry
    assert [f.name for f in host.failures] == ["exploding"]
    assert "boom" in host.failures[0].error


def test_duplicate_domain_names_are_a_loud_error_naming_both_plugins():
    with pytest.raises(PluginError, match=r"registered twice.*'first'.*'second'"):
        load_plugins(
            extra_plugins=[("first", _plugin_adding("same")), ("second", _plugin_adding("same"))],
            use_entry_points=False,
        )


def test_misspelled_hook_name_is_a_failure_of_that_plugin_alone():
    @hookimpl
    def attnq_register_domain(registry):  # missing "s"
        pass

    host = load_plugins(
        extra_plugins=[
            ("typo", types.SimpleNamespace(attnq_register_domain=attnq_register_domain)),
            ("fine", _plugin_adding("fine_domain")),
        ],
        use_entry_points=False,
    )
    assert "fine_domain" in host.registry and [f.name for f in host.failures] == ["typo"]
    assert (
        "attnq_register_domain" in host.failures[0].error and "attnq_register_domains" in host.failures[0].install_hint
    )


def test_forgotten_hookimpl_is_reported_not_silently_dropped():
    def attnq_register_domains(registry):  # no @hookimpl
        registry.add(_dummy_domain("never"))

    host = load_plugins(
        extra_plugins=[("forgot", types.SimpleNamespace(attnq_register_domains=attnq_register_domains))],
        use_entry_points=False,
    )
    assert [f.name for f in host.failures] == ["forgot"] and "@attnq.hookimpl" in host.failures[0].install_hint


@pytest.mark.parametrize(
    "registered, field",
    [
        ("not a spec", "DomainSpec(...)"),
        (dict(task_dirs=None), "DomainSpec.task_dirs"),
        (dict(baselines=None), "DomainSpec.baselines"),
        (dict(make_env="highway-v0"), "DomainSpec.make_env"),
    ],
)
def test_a_malformed_registration_disables_that_plugin_alone(registered, field):
    import dataclasses

    @hookimpl
    def attnq_register_domains(registry):
        registry.add(_dummy_domain("half"))  # added first, then dropped with the plugin
        registry.add(
            registered if isinstance(registered, str) else dataclasses.replace(_dummy_domain("bad"), **registered)
        )

    host = load_plugins(
        extra_plugins=[
            ("broken", types.SimpleNamespace(attnq_register_domains=attnq_register_domains)),
            ("fine", _plugin_adding("fine_domain")),
        ],
        use_entry_points=False,
    )
    assert "fine_domain" in host.registry and "half" not in host.registry and "bad" not in host.registry
    [failure] = host.failures
    assert failure.name == "broken" and field in failure.error and "fix:" in failure.error


def test_plugins_can_be_disabled_by_environment_variable(monkeypatch):
    monkeypatch.setenv("ATTNQ_DISABLE_PLUGINS", "highway")
    assert "highway" not in load_plugins().registry


def test_each_load_builds_a_fresh_registry():
    first = load_plugins(extra_plugins=[("temp", _plugin_adding("temporary"))])
    second = load_plugins()
    assert "temporary" in first.registry and "temporary" not in second.registry


def test_unknown_domain_error_lists_known_domains():
    with pytest.raises(PluginError, match="unknown domain 'nope'.*highway"):
        load_plugins().registry.get("nope")


def _signature_text(spec) -> str:
    """``def name(param: Type) -> Return`` with string annotations unquoted."""

    def text(annotation) -> str:
        return (
            annotation.strip("'\"") if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        )

    signature = inspect.signature(spec)
    params = ", ".join(f"{p.name}: {text(p.annotation)}" for p in signature.parameters.values())
    return f"def {spec.__name__}({params}) -> {text(signature.return_annotation)}"


def _hook_specs() -> list:
    return [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("attnq_")]


def test_every_hook_is_documented_with_its_exact_signature_in_the_plugin_guide():
    guide = (REPO / "docs" / "plugins.md").read_text()
    specs = _hook_specs()
    assert specs, "no hook specs found"
    for spec in specs:
        assert spec.__doc__ and len(spec.__doc__.strip()) > 40, f"{spec.__name__} needs a docstring for plugin authors"
        assert _signature_text(spec) in guide, f"docs/plugins.md must show `{_signature_text(spec)}`"


def test_every_hook_has_a_test_that_calls_it():
    this_file = Path(__file__).read_text()
    for spec in _hook_specs():
        assert re.search(rf"def {spec.__name__}\(", this_file), f"no test implements {spec.__name__}"
