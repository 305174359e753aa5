"""`attnq new-domain`: the generated package installs with pip, appears in `attnq plugins`, passes its
own tests (the domain contract) and trains, as generated."""

from __future__ import annotations

import json
import subprocess

import pytest

from attnq.testing import CHECKS
from conftest import attnq_command, pip_install_plugin, run_plugin_tests


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaffold")
    made = subprocess.run(
        attnq_command("new-domain", "my-cartpole", "--out", str(root / "attnq-my-cartpole")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return root / "attnq-my-cartpole", pip_install_plugin(root / "attnq-my-cartpole", root / "site")


def test_the_generated_plugin_is_found_with_its_task(generated):
    _, env = generated
    listed = subprocess.run(attnq_command("plugins", "--json"), env=env, capture_output=True, text=True, timeout=120)
    loaded = {item["domain"]: item for item in json.loads(listed.stdout)["loaded"]}
    assert loaded["my-cartpole"]["tasks"] == ["my-cartpole"] and loaded["my-cartpole"]["plugin"] == "my-cartpole"


def test_the_generated_plugin_passes_its_own_tests(generated):
    folder, env = generated
    completed = run_plugin_tests(folder, env)
    assert completed.returncode == 0 and f"{len(CHECKS)} passed" in completed.stdout, completed.stdout[-3000:]


def test_the_generated_plugin_trains_and_evaluates(generated, tmp_path):
    _, env = generated
    trained = subprocess.run(
        attnq_command(
            "train",
            "my-cartpole",
            "--set",
            "trainer.max_env_steps=600",
            "learner.learning_starts=200",
            "trainer.progress_bar=false",
            "--runs-dir",
            str(tmp_path),
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr
    [run_dir] = list(tmp_path.glob("my-cartpole/*"))
    evaluated = subprocess.run(
        attnq_command("evaluate", str(run_dir), "--episodes", "3"), env=env, capture_output=True, text=True, timeout=300
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["mean"]["length"] >= 1


def test_bad_names_and_existing_folders_are_refused_with_nothing_written(tmp_path):
    for args in (
        ["Bad_Name", "--out", str(tmp_path / "a")],
        ["ok-name", "--env", "Nope-v0", "--out", str(tmp_path / "b")],
    ):
        refused = subprocess.run(attnq_command("new-domain", *args), capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "fix:" in refused.stderr
    (tmp_path / "c").mkdir()
    again = subprocess.run(
        attnq_command("new-domain", "ok-name", "--out", str(tmp_path / "c")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "exists" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"] and not any((tmp_path / "c").iterdir())
