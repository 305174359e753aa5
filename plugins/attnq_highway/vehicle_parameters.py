"""Each highway-env env drives with its own vehicle parameters, whatever ran before it in the process.

highway-env keeps driving parameters on the vehicle classes (IDM's jam distance, comfort
accelerations, ...), and ``intersection-v0`` rewrites some of them on every reset without putting
them back. So a highway env made after an intersection env in the same process (a report, the
demo, a reused Ray worker) drives different traffic: the same agent and seed gave return 8.62 alone
and 7.43 after one intersection reset. :class:`OwnVehicleParameters` puts the library's parameters
back before each reset and the env's own (what its reset set) before each step.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

# class -> its own upper-case attributes (highway-env's convention for class-level parameters)
ClassParameters = dict[type, dict[str, Any]]

_library_defaults: ClassParameters | None = None
_missing = object()


def vehicle_classes() -> list[type]:
    """highway-env's road object classes and all their subclasses, loaded so far."""
    from highway_env.vehicle.objects import RoadObject

    found, stack = [], [RoadObject]
    while stack:
        cls = stack.pop()
        if cls not in found:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return found


def read_parameters(classes: list[type]) -> ClassParameters:
    return {cls: {name: value for name, value in vars(cls).items() if name.isupper()} for cls in classes}


def install_parameters(parameters: ClassParameters) -> None:
    """Make each class hold exactly these upper-case attributes of its own (inherited ones stay inherited)."""
    for cls, values in parameters.items():
        own = vars(cls)
        for name in [name for name in own if name.isupper() and name not in values]:
            delattr(cls, name)
        for name, value in values.items():
            if own.get(name, _missing) is not value:
                setattr(cls, name, value)


def library_defaults() -> ClassParameters:
    """The vehicle parameters as highway-env defines them: read once, before this process's first env."""
    global _library_defaults
    if _library_defaults is None:
        _library_defaults = read_parameters(vehicle_classes())
    return _library_defaults


class OwnVehicleParameters(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Resets from highway-env's own vehicle parameters and steps with the ones this env's reset set."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)  # no arguments: gymnasium can recreate the wrapper
        gym.Wrapper.__init__(self, env)
        self._own = library_defaults()

    def reset(self, **kwargs):
        install_parameters(library_defaults())
        result = self.env.reset(**kwargs)
        self._own = read_parameters(list(library_defaults()))
        return result

    def step(self, action):
        install_parameters(self._own)
        return self.env.step(action)
