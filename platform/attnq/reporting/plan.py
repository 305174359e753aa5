"""What a report covers: tasks (each with budget overrides) x torsos x seeds. Two built-in profiles.

``quick`` is the README's main job: every built-in domain, two seeds, small budgets, about 16
minutes on a 2-core CPU; its numbers show the pipeline, not converged agents. ``full`` uses each
task file's own budget and three seeds (hours on a CPU).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReportTask(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(description="task name or path to a task file")
    overrides: tuple[str, ...] = Field((), description="--set style overrides, e.g. trainer.max_env_steps=5000")


class ReportPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tasks: tuple[ReportTask, ...]
    torsos: tuple[str, ...] = ("transformer", "mlp")
    seeds: tuple[int, ...] = (0, 1, 2)

    def with_choices(self, tasks: list[str] | None, seeds: list[int] | None, torsos: list[str] | None,
                     overrides: list[str] | None) -> "ReportPlan":
        """The plan narrowed to the given tasks/seeds/torsos, with extra overrides on every task."""
        chosen = [t for t in self.tasks if not tasks or t.task in tasks]
        chosen += [ReportTask(task=t) for t in (tasks or []) if t not in {c.task for c in chosen}]
        extra = tuple(overrides or ())
        return ReportPlan(name=self.name, tasks=tuple(ReportTask(task=t.task, overrides=t.overrides + extra) for t in chosen),
                          torsos=tuple(torsos or self.torsos), seeds=tuple(seeds if seeds is not None else self.seeds))


_QUIET = ("trainer.progress_bar=false",)

PROFILES: dict[str, ReportPlan] = {
    "quick": ReportPlan(name="quick", seeds=(0, 1), tasks=(
        ReportTask(task="highway-fast", overrides=_QUIET + ("trainer.max_env_steps=4000", "eval.episodes=20")),
        ReportTask(task="sepsis", overrides=_QUIET + ("trainer.max_env_steps=40000", "learner.learning_starts=2000",
                                                       "trainer.checkpoint_every_env_steps=20000", "eval.episodes=2000",
                                                       # the task's 16 envs per update would double this run's updates
                                                       "env.num_envs=32",
                                                       # ~1,200 updates do not repay compiling, and the main job
                                                       # should not need a C++ compiler
                                                       "trainer.compile=false")),
        ReportTask(task="scan-simple", overrides=_QUIET + ("trainer.max_env_steps=40000", "learner.learning_starts=2000",
                                                            "exploration.decay_fraction=0.2",
                                                            "trainer.checkpoint_every_env_steps=20000", "eval.episodes=1000")),
        ReportTask(task="recsim-interest", overrides=_QUIET + ("trainer.max_env_steps=8000", "eval.episodes=64",
                                                                "domain_options.collab_filtering.user_steps=8000")),
    )),
    "full": ReportPlan(name="full", seeds=(0, 1, 2), tasks=(
        ReportTask(task="highway-fast", overrides=_QUIET),
        ReportTask(task="intersection", overrides=_QUIET),
        ReportTask(task="sepsis", overrides=_QUIET),
        ReportTask(task="scan-simple", overrides=_QUIET),
        ReportTask(task="scan-length", overrides=_QUIET),
        ReportTask(task="recsim-interest", overrides=_QUIET),
    )),
}
