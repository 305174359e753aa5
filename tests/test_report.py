"""Comparative reports: interval arithmetic on known data, and a real report from small saved runs."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from attnq.checkpoints import load_checkpoint_file
from attnq.config import load_task
from attnq.errors import AttnqError
from attnq.experiments.pipeline import run_plan
from attnq.experiments.plan import ReportPlan, ReportTask, report_profile
from attnq.experiments.records import load_records
from attnq.registry import load_plugins
from attnq.reporting.markdown import write_report
from attnq.statistics import bootstrap_interval, interquartile_mean
from conftest import SMALL_MODEL as SMALL_NETWORK
from conftest import TASKS, attnq_command, files_corpus

SMALL_MODEL = (*SMALL_NETWORK, "trainer.progress_bar=false")
SMALL_SEPSIS = SMALL_MODEL + (
    "trainer.max_env_steps=1500",
    "learner.learning_starts=500",
    "env.num_envs=8",
    "replay.batch_size=32",
    "eval.episodes=200",
    "eval.every_env_steps=500",
    "eval.episodes_during_training=50",
    "eval.keep_best=true",
)


def test_interquartile_mean_drops_the_outer_quarters():
    assert interquartile_mean([1, 2, 3, 4]) == 2.5
    assert interquartile_mean([0, 1, 2, 3, 4, 5, 6, 100]) == pytest.approx(np.mean([2, 3, 4, 5]))
    assert interquartile_mean([3.0]) == 3.0


def test_bootstrap_interval_on_known_data():
    constant = bootstrap_interval([0.7, 0.7, 0.7])
    assert [constant.point, constant.low, constant.high] == pytest.approx([0.7, 0.7, 0.7]) and constant.n == 3
    single = bootstrap_interval([5.0])
    assert (single.low, single.high, single.format()) == (5.0, 5.0, "5.000")
    # For the mean of 400 normal draws the bootstrap interval approaches mean +- 1.96 sigma / sqrt(n).
    sample = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    estimate = bootstrap_interval(sample, statistic=np.mean, resamples=4000)
    half_width = 1.96 * sample.std(ddof=1) / np.sqrt(len(sample))
    assert estimate.point == pytest.approx(sample.mean())
    assert estimate.low == pytest.approx(sample.mean() - half_width, abs=0.03)
    assert estimate.high == pytest.approx(sample.mean() + half_width, abs=0.03)
    assert bootstrap_interval(sample, seed=3) == bootstrap_interval(sample, seed=3)  # seeded: reports are reproducible


def test_quick_profile_covers_four_domains_with_both_torsos():
    quick = report_profile("quick", load_plugins())
    assert [t.task for t in quick.tasks] == ["highway-fast", "recsim-interest", "scan-simple", "sepsis"]
    assert quick.torsos == ("transformer", "mlp") and len(quick.seeds) == 2
    narrowed = quick.with_choices(["sepsis"], [4], ["mlp"], ["eval.episodes=7"])
    assert [t.task for t in narrowed.tasks] == ["sepsis"] and narrowed.seeds == (4,) and narrowed.torsos == ("mlp",)
    assert narrowed.tasks[0].overrides[-1] == "eval.episodes=7"
    assert "trainer.max_env_steps=40000" in narrowed.tasks[0].overrides  # the task file's quick budget


def test_a_task_joins_a_profile_by_declaring_it_in_its_task_file(tmp_path, monkeypatch):
    """A plugin's (or a user's) task joins `attnq report --profile` without touching the core."""
    own = (TASKS / "sepsis.yaml").read_text().replace("name: sepsis", "name: my-sepsis")
    own = own[: own.index("profiles:")] + "profiles:\n  full: [trainer.max_env_steps=1000]\n"
    (tmp_path / "my-sepsis.yaml").write_text(own)
    monkeypatch.setenv("ATTNQ_TASK_PATH", str(tmp_path))
    full = report_profile("full", load_plugins())
    mine = next(t for t in full.tasks if t.task == "my-sepsis")
    assert mine.overrides[-1] == "trainer.max_env_steps=1000" and "my-sepsis" not in {
        t.task for t in report_profile("quick", load_plugins()).tasks
    }
    assert full.keeps_runs and full.seeds == (0, 1, 2)


def _table_rows(page: str, first_cell: str) -> list[list[str]]:
    rows = [line.strip().strip("|").split("|") for line in page.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows if row[0].strip().startswith(first_cell)]


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    """Two real domains x two torsos x two seeds, with tiny budgets, trained once for these tests."""
    root = tmp_path_factory.mktemp("report")
    corpus = root / "corpus.tsv"
    corpus.write_text("a\tX\nb\tY\na b\tX Y\nb a\tY X\n", encoding="utf-8")
    plan = ReportPlan(
        name="small",
        seeds=(0, 1),
        torsos=("transformer", "mlp"),
        tasks=(
            ReportTask(task=str(TASKS / "sepsis.yaml"), overrides=SMALL_SEPSIS),
            ReportTask(
                task=str(TASKS / "scan-simple.yaml"),
                overrides=SMALL_MODEL
                + (
                    *files_corpus(corpus, corpus),
                    "env.num_envs=8",
                    "trainer.max_env_steps=800",
                    "learner.learning_starts=200",
                    "replay.batch_size=32",
                    "eval.episodes=4",
                    "trainer.log_every_updates=2",
                ),
            ),
        ),
    )
    runs_dir = root / "runs"
    records = run_plan(plan, runs_dir, progress_interval=0, stream=io.StringIO())
    out_dir = root / "docs"
    write_report(records, out_dir, "small", "attnq report (test)", {"python": "test"}, load_plugins())
    return runs_dir, out_dir


def test_report_files_exist_and_numbers_equal_the_runs(small_report):
    runs_dir, out_dir = small_report
    assert {p.name for p in out_dir.iterdir()} >= {
        "README.md",
        "results.json",
        "sepsis.md",
        "scan-simple.md",
        "figures",
    }
    for task in ("sepsis", "scan-simple"):
        assert (out_dir / "figures" / f"{task}-curves.png").stat().st_size > 1000
        assert (out_dir / "figures" / task / "attention.png").stat().st_size > 1000
    results = {t["task"]: t for t in json.loads((out_dir / "results.json").read_text())["tasks"]}
    sepsis = results["sepsis"]
    evaluations = {
        seed: json.loads((runs_dir / "sepsis" / f"transformer-seed{seed}" / "evaluation.json").read_text())
        for seed in (0, 1)
    }
    returns = [evaluations[seed]["mean"]["return"] for seed in (0, 1)]
    assert sepsis["agents"]["transformer"]["iqm"]["return"]["point"] == pytest.approx(interquartile_mean(returns))
    assert sepsis["agents"]["transformer"]["per_seed"]["1"]["return"] == returns[1]
    assert evaluations[0]["episodes"] == 200 and "exact_return" in sepsis["metrics"]
    # the task keeps its best validation checkpoint, so the report evaluates that one, as bench does
    best = load_checkpoint_file(runs_dir / "sepsis" / "transformer-seed0" / "checkpoints" / "best.ckpt")
    assert evaluations[0]["checkpoint"] == "best" and evaluations[0]["env_steps"] == best["attnq"]["env_steps"]
    assert list(sepsis["baselines"]) == ["random", "clinician", "optimal"]  # the domain's order
    assert sorted(p.name for p in (runs_dir / "sepsis" / "baselines").iterdir()) == [
        "clinician.json",
        "optimal.json",
        "random.json",
    ]  # one job, and one file, per baseline
    assert sepsis["baselines"]["optimal"]["exact_return"] == pytest.approx(0.8751, abs=1e-3)
    assert [a["metrics"]["return"] for a in sepsis["anchors"]] == [0.88, 0.78]

    page = (out_dir / "sepsis.md").read_text()
    [transformer_row] = _table_rows(page, "transformer-dqn")
    column = ["policy", "runs", *sepsis["metrics"], "env steps/s"].index("return")
    expected = bootstrap_interval(returns)
    assert transformer_row[1] == "2"
    assert transformer_row[column] == f"{expected.point:.3f} [{expected.low:.3f}, {expected.high:.3f}]"
    [optimal_row] = _table_rows(page, "baseline: optimal")
    assert float(optimal_row[column]) == pytest.approx(sepsis["baselines"]["optimal"]["return"], abs=5e-4)
    assert len(_table_rows(page, "optimal policy (value iteration) [1]")) == 1

    index = (out_dir / "README.md").read_text()
    assert "[scan-simple](scan-simple.md)" in index and "[sepsis](sepsis.md)" in index
    scan_row = _table_rows(index, "[scan-simple]")[0]
    assert scan_row[1] == "exact_match" and scan_row[-2] == "800"  # metric, budget
    [sepsis_row] = _table_rows(index, "[sepsis]")
    transformer = sepsis["agents"]["transformer"]["iqm"]["exact_return"]
    assert sepsis_row[1] == "exact_return" and sepsis_row[2].startswith(f"{transformer['point']:.3f} [")
    assert sepsis_row[5] == "0.88 [2]; 0.78 [3]"  # scan-simple's is [1]; sources below the table
    assert "[2] optimal policy (value iteration): icu-sepsis package README" in index


def test_the_headline_table_goes_into_a_results_page_between_its_markers(small_report, tmp_path):
    runs_dir, _ = small_report
    page = tmp_path / "docs" / "benchmarks.md"
    page.parent.mkdir()
    markers = "<!-- attnq headline: start -->\nold table\n<!-- attnq headline: end -->\n"
    page.write_text(f"# Results\n\nintro\n{markers}rest\n")
    out_dir = tmp_path / "docs" / "reports" / "small"
    write_report(load_records(runs_dir), out_dir, "small", "attnq report (test)", {"python": "test"}, page=page)
    text = page.read_text()
    assert text.startswith("# Results\n\nintro\n<!-- attnq headline: start -->\n| task | metric |")
    assert text.endswith("<!-- attnq headline: end -->\nrest\n") and "old table" not in text
    assert "[sepsis](reports/small/sepsis.md)" in text and "[scan-simple](reports/small/scan-simple.md)" in text
    write_report(load_records(runs_dir), out_dir, "small", "attnq report (test)", {"python": "test"}, page=page)
    assert page.read_text() == text  # redrawn in place, not appended


def test_a_smoke_report_shows_the_full_budget_figure_beside_each_row(small_report, tmp_path):
    runs_dir, out_dir = small_report
    assert report_profile("quick", load_plugins()).reference == "full"
    records = load_records(runs_dir)
    quick = tmp_path / "reports" / "quick"
    write_report(
        records, quick, "quick", "attnq report (test)", {"python": "test"}, reference_dir=quick.parent / "full"
    )
    index = (quick / "README.md").read_text()
    assert "**Smoke budgets**" in index and "[the full report](../full/README.md)" in index
    assert all(row[-1] == "not yet run" for row in _table_rows(index, "[s"))  # no full report yet
    (tmp_path / "reports" / "full").mkdir()
    shutil.copy(out_dir / "results.json", tmp_path / "reports" / "full" / "results.json")
    write_report(
        records, quick, "quick", "attnq report (test)", {"python": "test"}, reference_dir=quick.parent / "full"
    )
    [sepsis_row] = _table_rows((quick / "README.md").read_text(), "[sepsis]")
    full = json.loads((out_dir / "results.json").read_text())["tasks"]
    iqm = next(t for t in full if t["task"] == "sepsis")["agents"]["transformer"]["iqm"]["exact_return"]
    assert sepsis_row[-1].startswith(f"{iqm['point']:.3f} [") and sepsis_row[-1].endswith("(1,500 env steps)")


def test_a_results_page_without_markers_is_refused_before_anything_is_written(small_report, tmp_path):
    runs_dir, _ = small_report
    page = tmp_path / "page.md"
    page.write_text("# no markers\n")
    out = tmp_path / "out"
    completed = subprocess.run(
        attnq_command("report", "--from", str(runs_dir), "--out", str(out), "--page", str(page)),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2 and "has no headline markers" in completed.stderr and "fix:" in completed.stderr
    assert not out.exists() and page.read_text() == "# no markers\n"


def test_report_pages_say_what_every_metric_means(small_report):
    """Each built-in domain declares its metrics' meanings; the core explains its own."""
    _, out_dir = small_report
    for task in json.loads((out_dir / "results.json").read_text())["tasks"]:
        assert set(task["metric_meanings"]) == set(task["metrics"]), task["task"]
        page = (out_dir / f"{task['task']}.md").read_text()
        for name, meaning in task["metric_meanings"].items():
            assert f"- `{name}`: {meaning}" in page
    sepsis = (out_dir / "sepsis.md").read_text()
    assert "- `survived`: share of patients who survived" in sepsis and "- `exact_return`: the greedy" in sepsis


def test_report_is_redrawn_from_saved_runs_without_training(small_report, tmp_path):
    runs_dir, out_dir = small_report
    checkpoints = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*.ckpt")}
    redrawn = tmp_path / "again"
    completed = subprocess.run(
        attnq_command("report", "--from", str(runs_dir), "--out", str(redrawn), "--name", "small"),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert checkpoints == {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*.ckpt")}
    before = json.loads((out_dir / "results.json").read_text())["tasks"]
    after = json.loads((redrawn / "results.json").read_text())["tasks"]
    assert before == after
    assert len(load_records(runs_dir)) == 2


def _work_done(said: io.StringIO) -> list[str]:
    return [line for line in said.getvalue().splitlines() if line.startswith(("training", "resuming", "evaluating"))]


def test_a_redraw_can_leave_out_tasks(small_report, tmp_path):
    """A report of the tasks whose runs are complete, from a runs folder that also holds others."""
    runs_dir, _ = small_report
    completed = subprocess.run(
        attnq_command("report", "--from", str(runs_dir), "--tasks", "sepsis", "--out", str(tmp_path / "only")),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads((tmp_path / "only" / "results.json").read_text())
    assert [t["task"] for t in results["tasks"]] == ["sepsis"]
    assert results["name"] == "only"  # named after its folder, not after the default profile


def _one_sepsis_run_plan(*overrides: str, seed: int = 0) -> ReportPlan:
    """The small report's sepsis task, one MLP run, with ``overrides`` after the small settings."""
    return ReportPlan(
        name="small",
        seeds=(seed,),
        torsos=("mlp",),
        tasks=(ReportTask(task=str(TASKS / "sepsis.yaml"), overrides=SMALL_SEPSIS + overrides),),
    )


def test_run_plan_skips_finished_runs(small_report):
    runs_dir, _ = small_report
    evaluations = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("evaluation.json")}
    plan = _one_sepsis_run_plan()
    said = io.StringIO()
    run_plan(plan, runs_dir, progress_interval=0, stream=said)
    assert _work_done(said) == [] and "sepsis/mlp-seed0: reused" in said.getvalue()
    assert evaluations == {p: p.stat().st_mtime_ns for p in runs_dir.rglob("evaluation.json")}
    # compiling the TD loss, another thread count or device, or another checkpoint cadence changes
    # how fast a run trains, not what it learns (their declared role): still reusable
    saved = load_task(TASKS / "sepsis.yaml", list(SMALL_SEPSIS)).trainer
    faster = (
        f"trainer.compile={str(not saved.compile).lower()}",
        f"trainer.torch_threads={saved.torch_threads + 1}",
        "trainer.accelerator=cpu",
        f"trainer.checkpoint_every_env_steps={saved.checkpoint_every_env_steps + 7}",
    )
    compiled = _one_sepsis_run_plan(*faster)
    run_plan(compiled, runs_dir, progress_interval=0, stream=said)
    assert _work_done(said) == [] and evaluations == {
        p: p.stat().st_mtime_ns for p in runs_dir.rglob("evaluation.json")
    }


def _one_saved_sepsis_run(small_report, tmp_path) -> Path:
    """A copy of one of the report's saved runs, so a test may change it."""
    runs_dir, _ = small_report
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir / "sepsis" / "mlp-seed0", copy / "sepsis" / "mlp-seed0")
    return copy


def test_run_plan_refuses_a_saved_run_trained_with_other_settings(small_report, tmp_path):
    runs_dir = _one_saved_sepsis_run(small_report, tmp_path)
    files = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*") if p.is_file()}
    changed = _one_sepsis_run_plan("learner.lr=0.001")
    with pytest.raises(
        AttnqError, match=r"trained with learner.lr = 0.0003, but the task now asks for 0.001; fix: delete"
    ):
        run_plan(changed, runs_dir, progress_interval=0, stream=io.StringIO())
    assert files == {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*") if p.is_file()}


def test_run_plan_reevaluates_a_saved_run_on_the_report_s_episodes(small_report, tmp_path):
    runs_dir = _one_saved_sepsis_run(small_report, tmp_path)
    checkpoints = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("checkpoints/*.ckpt")}
    fewer = _one_sepsis_run_plan("eval.episodes=120")
    said = io.StringIO()
    run_plan(fewer, runs_dir, progress_interval=0, stream=said, baselines=False)
    evaluation = json.loads((runs_dir / "sepsis" / "mlp-seed0" / "evaluation.json").read_text())
    assert evaluation["episodes"] == 120 and [line.split()[0] for line in _work_done(said)] == ["evaluating"]
    assert checkpoints == {p: p.stat().st_mtime_ns for p in runs_dir.rglob("checkpoints/*.ckpt")}  # not trained again


def test_run_plan_reads_back_the_plan_s_runs_not_the_whole_folder(small_report, tmp_path):
    runs_dir, _ = small_report
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir / "sepsis", copy / "sepsis")
    one = _one_sepsis_run_plan(seed=1)
    said = io.StringIO()
    [record] = run_plan(one, copy, progress_interval=0, stream=said, baselines=False)
    assert [(run.torso, run.seed) for run in record.runs] == [("mlp", 1)] and not _work_done(said)
    # the folder itself still holds, and `report --from` still reads, all four
    [everything] = load_records(copy)
    assert sorted((run.torso, run.seed) for run in everything.runs) == [
        ("mlp", 0),
        ("mlp", 1),
        ("transformer", 0),
        ("transformer", 1),
    ]


def test_report_from_a_missing_folder_is_a_clear_error(tmp_path):
    completed = subprocess.run(
        attnq_command("report", "--from", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2 and "does not exist" in completed.stderr and "Traceback" not in completed.stderr


def test_resumed_run_keeps_its_earlier_learning_curve(tmp_path):
    from attnq.config import load_task
    from attnq.experiments.records import learning_curve
    from attnq.training.run import train

    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("a\tX\nb\tY\na b\tX Y\n", encoding="utf-8")
    overrides = list(SMALL_MODEL) + [
        *files_corpus(corpus, corpus),
        "env.num_envs=8",
        "learner.learning_starts=80",
        "replay.batch_size=16",
        "trainer.log_every_updates=2",
        "eval.episodes=3",  # one per test pair
        "eval.every_env_steps=200",
        "eval.episodes_during_training=3",
        "eval.validation_env_kwargs={}",  # three pairs: no validation part to carve
    ]
    first = train(load_task(TASKS / "scan-simple.yaml", overrides + ["trainer.max_env_steps=400"]), runs_dir=tmp_path)
    before = learning_curve(first.run_dir)
    train(load_task(TASKS / "scan-simple.yaml", overrides + ["trainer.max_env_steps=800"]), resume=first.run_dir)
    after = learning_curve(first.run_dir)
    assert (first.run_dir / "logs" / "metrics.csv").is_file()
    assert len(list(first.run_dir.glob("logs-resumed-*/metrics.csv"))) == 1
    assert before["env_steps"] and max(before["env_steps"]) <= 400 < max(after["env_steps"])
    assert after["env_steps"][: len(before["env_steps"])] == before["env_steps"]
    assert after["env_steps"] == sorted(after["env_steps"]) and min(after["wall_seconds"]) >= 0.0
    validated = [
        float(row["train/env_steps"])
        for log in sorted(first.run_dir.glob("logs*/metrics.csv"))
        for row in csv.DictReader(open(log))
        if row.get("eval/return")
    ]
    assert [steps // 200 for steps in validated] == [1, 2, 3, 4]  # on the same grid after the resume


@pytest.fixture(scope="module")
def committed_full_report(small_report, tmp_path_factory):
    """The small report as a commit holds a full report: its runs without checkpoints, its results."""
    runs_dir, out_dir = small_report
    reports = tmp_path_factory.mktemp("committed") / "reports"
    shutil.copytree(runs_dir, reports / "full" / "runs", ignore=shutil.ignore_patterns("checkpoints"))
    shutil.copy(out_dir / "results.json", reports / "full" / "results.json")
    shutil.copy(out_dir / "README.md", reports / "full" / "README.md")
    return reports


def _live_task(folder: Path) -> None:
    """A task file that declares the demo's live profile, at a test's budget."""
    text = (TASKS / "sepsis.yaml").read_text().replace("name: sepsis", "name: live-sepsis")
    live = ", ".join(SMALL_SEPSIS + ("eval.every_env_steps=0", "eval.keep_best=false"))
    (folder / "live-sepsis.yaml").write_text(text[: text.index("profiles:")] + f"profiles:\n  live: [{live}]\n")


def test_the_demo_shows_committed_agents_on_fresh_episodes_and_trains_live(
    committed_full_report, tmp_path, monkeypatch
):
    from attnq.experiments.demo import FRESH_EVAL_SEED, demo_parts, run_demo, write_demo

    full = committed_full_report / "full"
    before = {p: p.stat().st_mtime_ns for p in full.rglob("*") if p.is_file()}
    _live_task(tmp_path)
    monkeypatch.setenv("ATTNQ_TASK_PATH", str(tmp_path))
    host = load_plugins()
    runs = tmp_path / "runs"
    # a learning override reaches the live training only: committed agents are evaluated as they are
    parts = demo_parts(host, full, runs, ["sepsis", "live-sepsis"], ("eval.episodes=60", "learner.lr=0.0005"))
    assert [Path(t.task).parent.parent.name for t in parts.agents.tasks] == ["sepsis"]
    assert parts.agents.seeds == (0, 1) and parts.agents.torsos == ("transformer", "mlp")
    assert f"eval.seed={FRESH_EVAL_SEED}" in parts.agents.tasks[0].overrides
    assert "learner.lr=0.0005" not in parts.agents.tasks[0].overrides
    assert [t.task for t in parts.live.tasks] == ["live-sepsis"] and parts.live.seeds == (0, 1)

    agents, live = run_demo(parts, runs, None, host, progress_interval=0)
    assert before == {p: p.stat().st_mtime_ns for p in full.rglob("*") if p.is_file()}  # the commit is untouched
    assert not list((runs / "agents").rglob("checkpoints"))  # evaluated, never trained
    committed = {(r.torso, r.seed): r for r in load_records(full / "runs", tasks={"sepsis"})[0].runs}
    [sepsis] = agents
    assert sepsis.task.eval.seed == FRESH_EVAL_SEED and sepsis.task.eval.episodes == 60
    for run in sepsis.runs:
        old = committed[(run.torso, run.seed)]
        assert run.env_steps == old.env_steps
        # the same network: its exact expected return does not depend on the episodes drawn
        assert run.metrics["exact_return"] == pytest.approx(old.metrics["exact_return"])
    for baseline in (runs / "agents" / "sepsis" / "baselines").glob("*.json"):
        assert json.loads(baseline.read_text())["eval_seed"] == FRESH_EVAL_SEED
    [trained] = live
    assert trained.task.name == "live-sepsis" and {r.env_steps for r in trained.runs} == {1500}
    assert trained.task.learner.lr == 0.0005 and (runs / "live" / "live-sepsis" / "mlp-seed0" / "checkpoints").is_dir()

    out = committed_full_report / "demo"
    index = write_demo(agents, live, out, "attnq report (test)", {"python": "test"}, host, full).read_text()
    assert "## Trained agents on fresh episodes" in index and "[the full report](../full/README.md)" in index
    [row] = _table_rows(index, "[sepsis]")
    iqm = next(t for t in json.loads((full / "results.json").read_text())["tasks"] if t["task"] == "sepsis")
    assert row[-1].startswith(f"{iqm['agents']['transformer']['iqm']['exact_return']['point']:.3f} [")
    assert "## Trained just now" in index and _table_rows(index, "[live-sepsis](live/live-sepsis.md)")
    assert "**Smoke budgets**" in (out / "live" / "README.md").read_text()
    assert "60 greedy episodes on fixed seeds (from 500000000)" in (out / "sepsis.md").read_text()


def test_the_demo_refuses_options_that_do_not_apply_to_it(tmp_path):
    completed = subprocess.run(
        attnq_command("report", "--profile", "demo", "--seeds", "4", "--out", str(tmp_path / "demo")),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2 and "--seeds does not apply to the demo" in completed.stderr
    assert not (tmp_path / "demo").exists()


def test_training_minutes_say_when_a_run_took_under_one():
    from attnq.reporting.markdown import _minutes

    assert _minutes([20.0, 25.0, 29.0]) == "<1" and _minutes([600.0, 660.0, 900.0]) == "11"
    assert _minutes([None, 0.0]) == "-" and _minutes([45.0]) == "1"


def test_a_variant_s_metrics_say_what_the_variant_changed():
    from attnq.config import EvalVariant
    from attnq.registry import load_plugins
    from attnq.reporting.markdown import metric_meanings

    domain = load_plugins().registry.get("translation")
    variant = EvalVariant(env_kwargs={"oracle_length": True}, metrics=["exact_match"], description="length given")
    meanings = metric_meanings(domain, ["exact_match", "exact_match@oracle_length"], {"oracle_length": variant})
    assert meanings["exact_match@oracle_length"] == f"{domain.metrics['exact_match']}, length given"
    assert meanings["exact_match"] == domain.metrics["exact_match"]


@pytest.mark.parametrize(
    "trained_by, smoke_note",
    [("attnq report --profile full --executor ray", False), ("attnq report --profile=quick", True), (None, True)],
)
def test_a_redraw_takes_the_profile_of_the_command_that_trained_the_runs(
    small_report, tmp_path, trained_by, smoke_note
):
    """A full report redrawn without --profile is not labelled as smoke budgets (the quick default)."""
    runs_dir, _ = small_report
    copied = tmp_path / "runs"
    shutil.copytree(runs_dir, copied)
    (copied / "report-command.txt").unlink(missing_ok=True)
    if trained_by:
        (copied / "report-command.txt").write_text(trained_by + "\n")
    out = tmp_path / "reports" / "full"
    completed = subprocess.run(
        attnq_command("report", "--from", str(copied), "--out", str(out)), capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    assert ("**Smoke budgets**" in (out / "README.md").read_text()) == smoke_note


def test_a_staged_agent_is_reused_until_its_committed_run_changes(committed_full_report, tmp_path):
    """A demo staged before a pull must not keep showing (or refuse) the agent the pull replaced."""
    from attnq.experiments.demo import stage_run

    committed = tmp_path / "committed"
    shutil.copytree(committed_full_report / "full" / "runs" / "sepsis" / "transformer-seed0", committed)
    staged = tmp_path / "staged"
    stage_run(committed, staged)
    (staged / "evaluation.json").write_text("{}")  # as the demo's evaluation leaves it
    stage_run(committed, staged)
    assert (staged / "evaluation.json").is_file()  # unchanged: reused with its evaluation
    config = committed / "config.yaml"
    config.write_text(config.read_text().replace("seed: 0", "seed: 7", 1))  # a retrained agent arrives
    stage_run(committed, staged)
    assert not (staged / "evaluation.json").exists() and "seed: 7" in (staged / "config.yaml").read_text()
