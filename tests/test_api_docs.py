"""docs/api.md's example runs as written (in a fresh folder), so the Python API docs match the code."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO, cli_env


def test_the_python_api_page_runs_as_written(tmp_path):
    [block] = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), flags=re.S)
    script = tmp_path / "api_example.py"
    script.write_text(block)
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=900
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines[0] == str(["gym", "highway", "recsim", "sepsis", "translation"])
    assert (tmp_path / "explain" / "attention.png").is_file() and (tmp_path / "runs" / "notebook").is_dir()
