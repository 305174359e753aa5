"""``attnq new-domain NAME``: a pip-installable domain plugin that installs, passes the domain
contract (:mod:`attnq.testing`) and trains as generated, to be edited from there.

The generated domain wraps one registered gymnasium env with a flat ``Box`` observation and
``Discrete`` actions (``--env``, default CartPole-v1): one token per observation feature, the
env's own reward, its metrics ``return`` and ``length``. Everything is written to a new folder, or
nothing is.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from attnq.errors import AttnqError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "attnq-{name}"
version = "0.1.0"
description = "attnq domain plugin: {env_id} as tokens"
requires-python = ">=3.10"
dependencies = ["attnq"]

# This entry point is how attnq finds the plugin.
[project.entry-points."attnq.plugins"]
{name} = "{package}.plugin"

[tool.setuptools]
packages = ["{package}"]

[tool.setuptools.package-data]
{package} = ["tasks/*.yaml"]
"""

PLUGIN = '''\
"""The {name} domain: {env_id} with one token per observation feature."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from attnq import DomainContext, DomainSpec, StateEncoder, SumRewardAdapter, Tokens, hookimpl


def make_env(env_id: str, env_kwargs: Mapping[str, Any], options: BaseModel) -> gym.Env:
    """One env; a top-level function, because vector-env workers receive it pickled."""
    env = gym.make(env_id, **dict(env_kwargs))
    box = isinstance(env.observation_space, gym.spaces.Box)
    if not box or not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(
            f"{{env_id}} has {{env.observation_space}} observations and {{env.action_space}} actions; "
            "this domain takes a Box observation and Discrete actions"
        )
    return env


class FeatureEncoder(StateEncoder):
    """One token per observation feature: its own bias plus its value times its own direction
    (the numerical-feature tokens of FT-Transformer, Gorishniy et al. 2021)."""

    def __init__(self, num_features: int, d_model: int) -> None:
        super().__init__(d_model)
        self.num_tokens = num_features
        self.bias = nn.Parameter(torch.randn(num_features, d_model) * 0.5)
        self.weight = nn.Parameter(torch.randn(num_features, d_model) * 0.5)

    def forward(self, observations_BX: torch.Tensor) -> Tokens:
        values_BT1 = observations_BX.reshape(len(observations_BX), -1).unsqueeze(-1)
        mask_BT = torch.ones(values_BT1.shape[:2], dtype=torch.bool, device=observations_BX.device)
        return Tokens(self.bias + values_BT1 * self.weight, mask_BT)

    def token_labels(self, observation: np.ndarray) -> list[str]:
        return [f"x{{i}} {{value:+.2f}}" for i, value in enumerate(np.asarray(observation).reshape(-1))]


def make_encoder(context: DomainContext, d_model: int) -> FeatureEncoder:
    return FeatureEncoder(int(np.prod(context.probe_env.observation_space.shape)), d_model)


def make_reward_adapter(context: DomainContext) -> SumRewardAdapter:
    return SumRewardAdapter()


@hookimpl
def attnq_register_domains(registry):
    registry.add(
        DomainSpec(
            name="{name}",
            description="{env_id}, one token per observation feature",
            make_env=make_env,
            make_encoder=make_encoder,
            make_reward_adapter=make_reward_adapter,
            task_dirs=(Path(__file__).parent / "tasks",),
            metrics={{"return": "sum of {env_id}'s rewards over an episode"}},
            libraries=("gymnasium",),
        )
    )
'''

TASK = """\
name: {name}
domain: {name}
description: {env_id} with one token per observation feature
seed: 0
env:
  id: {env_id}
  num_envs: 4
  vectorization: sync
model:
  d_model: 32
  layers: 1
  heads: 2
  feedforward_dim: 64
  pool: cls
replay:
  capacity: 20000
  batch_size: 64
learner:
  gamma: 0.99
  lr: 0.0005
  target_update_interval: 500
  learning_starts: 1000
exploration:
  decay_fraction: 0.3
trainer:
  max_env_steps: 20000
  checkpoint_every_env_steps: 10000
eval:
  episodes: 20
  seed: 10000
"""

TESTS = """\
\"\"\"The {name} domain against attnq's domain contract: one pytest case per check.\"\"\"

from attnq.testing import parametrize_with_checks


@parametrize_with_checks(["{name}"])
def test_{package}_meets_the_domain_contract(task, check):
    check(task)
"""

README = """\
# attnq-{name}

An [attnq](https://pypi.org/project/attnq/) domain plugin: `{env_id}` as tokens, one per
observation feature, for attnq's Transformer-DQN.

```bash
pip install -e .              # attnq finds the plugin through its entry point
attnq plugins                 # {name}  loaded  tasks: {name}
pytest tests                  # the domain contract (attnq.testing), one case per check
attnq train {name}            # prints the run folder
attnq evaluate runs/{name}/<run>
```

Edit `{package}/plugin.py` (environment, state encoder, reward adapter, baselines, metrics) and
`{package}/tasks/{name}.yaml` (every setting; unknown keys are errors); keep the tests passing.
"""


def new_domain(name: str, env_id: str, out: Path) -> Path:
    """Write the plugin package ``attnq-NAME`` into ``out`` (a folder that must not exist yet)."""
    if not NAME_PATTERN.match(name):
        raise AttnqError(
            f"domain name {name!r}: use lower-case letters, digits and '-', starting with a letter "
            "(it names the package attnq_NAME and the task); fix: e.g. attnq new-domain my-cartpole"
        )
    if out.exists():
        raise AttnqError(f"{out} exists; fix: give a new folder with --out, or remove {out}")
    import gymnasium as gym

    try:
        gym.spec(env_id)
    except gym.error.Error as exc:
        raise AttnqError(
            f"--env {env_id!r} is not a registered gymnasium env ({exc}); fix: give a registered id, e.g. "
            "CartPole-v1, or import the package that registers it first"
        ) from None
    package = "attnq_" + name.replace("-", "_")
    values = {"name": name, "package": package, "env_id": env_id}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{package}/__init__.py": '"""attnq domain plugin: {env_id} as tokens."""\n',
        f"{package}/plugin.py": PLUGIN,
        f"{package}/tasks/{name}.yaml": TASK,
        f"tests/test_{package}.py": TESTS,
    }
    # written beside the target and renamed into place: a failure leaves nothing half-written
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None))
    try:
        for relative, template in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.format(**values), encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
