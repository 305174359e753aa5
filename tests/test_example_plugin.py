"""The plugin guide's example (docs/examples/attnq-corridor) installed with pip and trained via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from attnq.testing import CHECKS
from conftest import REPO, attnq_command, pip_install_plugin, run_plugin_tests

EXAMPLE = REPO / "docs" / "examples" / "attnq-corridor"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """A real pip install of the example into its own folder, made visible through PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    env = pip_install_plugin(EXAMPLE, target)
    assert list(target.glob("attnq_corridor-*.dist-info/entry_points.txt"))
    return env


def test_installed_example_is_discovered_with_its_task(installed_example):
    listing = subprocess.run(
        attnq_command("plugins", "--json"), env=installed_example, capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    domains = {d["domain"]: d for d in json.loads(listing.stdout)["loaded"]}
    assert domains["corridor"]["plugin"] == "corridor"
    assert domains["corridor"]["tasks"] == ["corridor"]
    assert domains["corridor"]["baselines"] == ["random", "always_right"]
    assert "highway" in domains


def test_installed_example_trains_and_learns_the_corridor(installed_example, tmp_path):
    trained = subprocess.run(
        attnq_command("train", "corridor", "--runs-dir", str(tmp_path)),
        env=installed_example,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr
    [run_dir] = list(tmp_path.glob("corridor/*"))
    evaluated = subprocess.run(
        attnq_command("evaluate", str(run_dir), "--episodes", "4"),
        env=installed_example,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout.strip().splitlines()[-1])
    # Walking straight to the goal of a 6-cell corridor takes 5 steps: 1 - 4 * 0.01 = 0.96.
    assert result["mean"]["return"] == pytest.approx(0.96)
    assert result["mean"]["length"] == 5.0


def test_reports_name_the_installed_plugin_and_its_domain_s_libraries(installed_example):
    script = (
        "import json; from attnq.registry import load_plugins; "
        "from attnq.reporting.markdown import library_versions; print(json.dumps(library_versions(load_plugins())))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], env=installed_example, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    versions = json.loads(completed.stdout.strip().splitlines()[-1])
    assert versions["attnq-corridor"] == "0.1.0"  # a third-party plugin's own distribution
    assert {"attnq", "torch", "highway-env", "icu-sepsis", "recsim-ng", "tensorflow", "sacrebleu"} <= set(versions)


def test_the_example_s_own_tests_run_the_domain_kit(installed_example):
    """What a plugin author's suite looks like: the example's tests, one case per check, all pass."""
    completed = run_plugin_tests(EXAMPLE, installed_example)
    assert completed.returncode == 0 and f"{len(CHECKS)} passed" in completed.stdout, completed.stdout[-3000:]
