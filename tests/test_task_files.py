"""Task files: validation errors name file, field and fix; overrides; name lookup; CLI exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from attnq.catalog import available_tasks, find_task
from attnq.config import apply_overrides, load_task, parse_override
from attnq.errors import TaskFileError
from attnq.registry import load_plugins
from conftest import TASKS, attnq_command


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _highway_data() -> dict:
    return yaml.safe_load((TASKS / "highway-fast.yaml").read_text())


@pytest.mark.parametrize("path", sorted(TASKS.glob("*.yaml")), ids=lambda path: path.stem)
def test_shipped_task_files_validate_with_each_profile(path):
    task = load_task(path)
    # the run folders and `attnq train NAME` find the task by its file's name
    assert task.name == path.stem
    for profile, overrides in task.profiles.items():
        assert load_task(path, overrides).name == task.name, profile


def test_missing_task_file(tmp_path):
    with pytest.raises(TaskFileError, match="does not exist"):
        load_task(tmp_path / "nope.yaml")


def test_unknown_key_names_file_field_and_allowed_keys(tmp_path):
    data = _highway_data()
    data["model"]["layerz"] = 3
    path = _write(tmp_path, data)
    with pytest.raises(TaskFileError) as info:
        load_task(path)
    message = str(info.value)
    assert str(path) in message and "model.layerz" in message and "unknown key" in message
    assert "layers" in message  # the fix lists the allowed keys


def test_wrong_type_and_negative_steps_are_rejected_with_the_field(tmp_path):
    data = _highway_data()
    data["model"]["layers"] = "two"
    data["trainer"]["max_env_steps"] = -5
    with pytest.raises(TaskFileError) as info:
        load_task(_write(tmp_path, data))
    message = str(info.value)
    assert "model.layers" in message and "'two'" in message
    assert "trainer.max_env_steps" in message and "range" in message


def test_heads_must_divide_width(tmp_path):
    with pytest.raises(TaskFileError, match="divisible"):
        load_task(TASKS / "highway-fast.yaml", ["model.d_model=30", "model.heads=4"])


def test_not_a_mapping_and_bad_yaml(tmp_path):
    with pytest.raises(TaskFileError, match="YAML mapping"):
        load_task(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(TaskFileError, match="not valid YAML"):
        load_task(_write(tmp_path, "name: [unclosed\n"))


def test_overrides_are_typed_and_never_mutate_the_callers_data():
    data = _highway_data()
    before = yaml.safe_dump(data)
    updated = apply_overrides(
        data, ["trainer.max_env_steps=5000", "model.layers=1", "seed=3", "replay.prioritized=true"]
    )
    assert yaml.safe_dump(data) == before
    assert updated["trainer"]["max_env_steps"] == 5000 and updated["model"]["layers"] == 1
    assert updated["seed"] == 3 and updated["replay"]["prioritized"] is True
    assert parse_override("env.id=highway-v0") == (["env", "id"], "highway-v0")
    with pytest.raises(TaskFileError, match="key.path=value"):
        parse_override("model.layers")


def test_override_of_unknown_key_is_an_error():
    with pytest.raises(TaskFileError, match="trainer.max_env_stepz"):
        load_task(TASKS / "highway-fast.yaml", ["trainer.max_env_stepz=10"])


def test_tasks_are_found_by_name_and_listed_per_domain():
    host = load_plugins()
    assert find_task("highway-fast", host).resolve() == (TASKS / "highway-fast.yaml").resolve()
    tasks = available_tasks(host)
    assert tasks["intersection"][0] == "highway"
    with pytest.raises(TaskFileError, match="unknown task 'no-such-task'.*highway-fast"):
        find_task("no-such-task", host)


def test_domain_options_are_validated_by_the_domain(tmp_path):
    from attnq.runtime import prepare_task

    task = load_task(TASKS / "highway-fast.yaml", ["domain_options.color=red"])
    with pytest.raises(TaskFileError, match="field 'domain_options.color': unknown key"):
        prepare_task(task)


def test_cli_user_errors_exit_non_zero_with_one_message_and_no_traceback(tmp_path):
    bad = _highway_data()
    bad["replay"]["capacty"] = 10
    path = _write(tmp_path, bad)
    for args in (
        ["train", str(path)],
        ["train", "no-such-task"],
        ["evaluate", str(tmp_path / "missing-run")],
        ["train", "highway-fast", "--set", "model.torso=cnn"],
    ):
        result = subprocess.run(attnq_command(*args), capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr


def test_encoder_rejects_observations_it_cannot_take():
    from attnq.runtime import prepare_task

    task = load_task(TASKS / "highway-fast.yaml", ["env.kwargs.config.observation.type=OccupancyGrid"])
    with pytest.raises(TaskFileError, match="cannot take observations"):
        prepare_task(task)


def test_a_misspelled_highway_setting_is_refused_not_ignored():
    from attnq.runtime import prepare_task

    task = load_task(TASKS / "highway-fast.yaml", ["env.kwargs.config.lanes_countt=4"])
    with pytest.raises(
        TaskFileError, match=r"field 'env.kwargs'.*'lanes_countt' are not settings of highway-fast-v0.*lanes_count"
    ):
        prepare_task(task)
    evaluation = load_task(TASKS / "highway-fast.yaml", ["eval.env_kwargs.config.vehicles_densityy=2"])
    with pytest.raises(TaskFileError, match=r"field 'eval.env_kwargs'.*vehicles_densityy"):
        prepare_task(evaluation)


@pytest.mark.parametrize(
    ("task", "named"),
    [("sepsis", "inadmissible_action_strategy"), ("recsim-interest", "domain_options"), ("scan-simple", "part")],
)
def test_env_settings_a_domain_does_not_know_are_refused_not_ignored(task, named):
    from attnq.runtime import prepare_task

    with pytest.raises(TaskFileError, match=rf"field 'env.kwargs'.*bogus.*{named}"):
        prepare_task(load_task(TASKS / f"{task}.yaml", ["env.kwargs.bogus=1"]))


def test_a_profile_override_that_names_no_field_is_refused(tmp_path):
    text = (TASKS / "highway-fast.yaml").read_text().replace("trainer.max_env_steps=4000", "trainer.max_env_stepz=4000")
    (tmp_path / "highway-fast.yaml").write_text(text)
    with pytest.raises(TaskFileError, match=r"field 'profiles'.*'quick'.*trainer.max_env_stepz=4000"):
        load_task(tmp_path / "highway-fast.yaml", [])
