"""The driving plugin against real highway-env: envs of one process do not change each other's traffic."""

from __future__ import annotations

import numpy as np
import pytest

from attnq.config import load_task
from attnq_highway.plugin import make_env
from attnq_highway.vehicle_parameters import install_parameters, library_defaults, read_parameters
from conftest import TASKS

IDLE = 1  # highway-env's DiscreteMetaAction for "keep lane and speed"


@pytest.fixture
def make():
    """The driving plugin's env of a task file; each closed when the test ends."""
    made = []

    def _make(task_file: str):
        task = load_task(TASKS / task_file)
        made.append(make_env(task.env.id, task.env.kwargs, None))
        return made[-1]

    yield _make
    for env in made:
        env.close()


def _alone(make, task_file: str, seed: int, steps: int) -> list[np.ndarray]:
    """The episode as in a fresh process, whatever envs this one made before."""
    env = make(task_file)
    install_parameters(library_defaults())
    return _observations(env, seed, steps)


def _observations(env, seed: int, steps: int) -> list[np.ndarray]:
    observation, _ = env.reset(seed=seed)
    seen = [observation]
    for _ in range(steps):
        observation, _, terminated, truncated, _ = env.step(IDLE)
        seen.append(observation)
        if terminated or truncated:
            break
    return seen


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_highway_episode_is_the_same_after_an_intersection_env_reset_in_the_process(make):
    # intersection-v0 rewrites IDM's class-level parameters on reset; a later highway env must not drive with them
    alone = _alone(make, "highway-fast.yaml", seed=3, steps=15)
    intersection = make("intersection.yaml")
    intersection.reset(seed=0)
    assert _same(_observations(make("highway-fast.yaml"), seed=3, steps=15), alone)


def test_highway_and_intersection_envs_stepped_in_turn_each_drive_as_when_alone(make):
    highway_alone = _alone(make, "highway-fast.yaml", seed=4, steps=10)
    intersection_alone = _alone(make, "intersection.yaml", seed=1, steps=10)
    highway, intersection = make("highway-fast.yaml"), make("intersection.yaml")
    seen = {"highway": [highway.reset(seed=4)[0]], "intersection": [intersection.reset(seed=1)[0]]}
    done = {"highway": False, "intersection": False}
    for _ in range(10):
        for name, env in (("intersection", intersection), ("highway", highway)):
            if not done[name]:
                observation, _, terminated, truncated, _ = env.step(IDLE)
                seen[name].append(observation)
                done[name] = terminated or truncated
    assert _same(seen["highway"], highway_alone)
    assert _same(seen["intersection"], intersection_alone)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_installed_parameters_are_exactly_the_ones_read(depth):
    # a chain of classes, each overriding, adding and inheriting parameters; every change is undone
    classes = [type("Base", (), {"SPEED": 1.0, "LENGTH": 5.0, "helper": "kept"})]
    for level in range(1, depth):
        classes.append(type(f"Sub{level}", (classes[-1],), {"SPEED": float(level), f"ONLY_{level}": level}))
    saved = read_parameters(classes)
    expected = {cls: (cls.SPEED, cls.LENGTH, cls.helper) for cls in classes}
    for level, cls in enumerate(classes):
        cls.SPEED, cls.LENGTH, cls.NEW = -1.0, -2.0, level  # override, shadow an inherited one, add one
        cls.helper = "lower-case attributes are not parameters"
    install_parameters(saved)
    assert read_parameters(classes) == saved
    for cls in classes:
        assert (cls.SPEED, cls.LENGTH) == expected[cls][:2] and "NEW" not in vars(cls)
        assert cls.helper == "lower-case attributes are not parameters"
