from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from attnq.config import TaskConfig, load_task

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "tasks"

# A few hundred real highway-env steps with a small network: enough to exercise every part.
TINY_TRAINING = [
    "trainer.max_env_steps=240",
    "trainer.checkpoint_every_env_steps=120",
    "trainer.progress_bar=false",
    "learner.learning_starts=60",
    "replay.capacity=2000",
    "replay.batch_size=16",
    "model.d_model=32",
    "model.layers=1",
    "model.heads=2",
    "model.feedforward_dim=32",
    "eval.episodes=3",
]


# A network small enough for real training runs in tests, shared by the domain tests.
# Eager: compiling costs 20-45 s per network shape; test_sepsis.py checks the compiled loss on its own.
SMALL_MODEL = [
    "model.d_model=32",
    "model.layers=1",
    "model.heads=2",
    "model.feedforward_dim=32",
    "trainer.compile=false",
]


def files_corpus(train_file: object, test_file: object) -> list[str]:
    """Overrides that train scan-simple.yaml on corpus files too small to spare validation pairs."""
    return [
        "domain_options.corpus=files",
        f"domain_options.train_file={train_file}",
        f"domain_options.test_file={test_file}",
        "domain_options.validation_pairs=0",
        "eval.every_env_steps=0",
        "eval.keep_best=false",
    ]


@pytest.fixture
def tiny_highway_task() -> TaskConfig:
    return load_task(TASKS / "highway-fast.yaml", TINY_TRAINING)


def attnq_command(*args: str) -> list[str]:
    """Run the CLI the way a user does, in a fresh interpreter."""
    return [sys.executable, "-m", "attnq.cli", *args]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def pip_install_plugin(source: Path, target: Path) -> dict[str, str]:
    """A real pip install of a plugin package into ``target``; the environment that makes it visible."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(target), str(source)],
        check=True,
        timeout=300,
        cwd=target.parent,
    )
    return cli_env(PYTHONPATH=str(target))


def run_plugin_tests(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A plugin package's own test suite (``folder/tests``), run as its author would."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
    )
