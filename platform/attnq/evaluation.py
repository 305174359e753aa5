"""Evaluation as a standalone function, reused by the CLI, training callbacks, benchmarks and reports.

Episode ``i`` always starts from ``reset(seed=seed + i)`` whatever the number of parallel workers,
so two policies evaluated with the same seed face the same episodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnq.domain import Policy
from attnq.errors import PluginError, TaskFileError
from attnq.runtime import TaskRuntime, split_vector_info


@dataclass
class EvaluationResult:
    episodes: list[dict[str, float]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def metric_names(self) -> list[str]:
        return list(self.episodes[0]) if self.episodes else []

    def means(self) -> dict[str, float]:
        return {name: float(np.mean([e[name] for e in self.episodes])) for name in self.metric_names()}

    def stds(self) -> dict[str, float]:
        return {name: float(np.std([e[name] for e in self.episodes])) for name in self.metric_names()}

    def to_dict(self) -> dict:
        return {
            "episodes": len(self.episodes),
            "seeds": [self.seeds[0], self.seeds[-1]] if self.seeds else [],
            "mean": self.means(),
            "std": self.stds(),
            "per_episode": self.episodes,
        }


def policy_metrics(
    runtime: TaskRuntime, policy: Policy, episodes: int, seed: int, exact: bool = True
) -> tuple[EvaluationResult, dict[str, float]]:
    """Evaluate ``policy`` and return its result and metric means; with ``exact`` (a deterministic
    policy on a domain with a known model) the means gain the exact expected return. Each of the
    task's ``eval.variants`` evaluates the same episodes again with its env kwargs, and adds its
    metrics as ``METRIC@NAME``."""
    evaluation = evaluate_policy(runtime, policy, episodes, seed)
    metrics = evaluation.means()
    if exact and runtime.domain.exact_return is not None:
        metrics["exact_return"] = runtime.domain.exact_return(runtime.context, policy)
    for name, variant in runtime.task.eval.variants.items():
        means = evaluate_policy(runtime, policy, episodes, seed, env_kwargs=variant.env_kwargs).means()
        missing = [m for m in variant.metrics if m not in means]
        if missing:
            raise TaskFileError(
                f"task {runtime.task.name!r}: field 'eval.variants.{name}.metrics' names {missing}, which the "
                f"{runtime.domain.name!r} domain does not report; fix: use some of {sorted(means)}"
            )
        metrics.update({variant_metric(m, name): means[m] for m in variant.metrics})
    return evaluation, metrics


def validation_score(means: dict[str, float]) -> float:
    """What a validation round is judged by (the kept-best checkpoint, a sweep's ranking): the exact
    expected return where the domain computes one, since sampled returns of a few thousand episodes
    carry noise as large as the gaps between settings; else the sampled mean return."""
    return means.get("exact_return", means["return"])


def variant_metric(metric: str, variant: str) -> str:
    """The name a variant's metric is reported under."""
    return f"{metric}@{variant}"


def checked_actions(runtime: TaskRuntime, policy: Policy, observations: np.ndarray) -> np.ndarray:
    """The policy's actions for a batch, refused with the policy named when their shape is not one
    action (or slate) per observation: a plugin's baseline fails here, not deep in the env."""
    actions = np.asarray(policy(observations))
    expected = (len(observations),) if runtime.slate_size == 1 else (len(observations), runtime.slate_size)
    if actions.shape != expected:
        raise PluginError(
            f"policy {getattr(policy, '__name__', type(policy).__name__)} of domain {runtime.domain.name!r} returned "
            f"actions of shape {actions.shape} for {len(observations)} observations; fix: return {expected}, one "
            "action (a slate: k items) per observation"
        )
    return actions


def checked_summary(runtime: TaskRuntime, summary: dict[str, float]) -> dict[str, float]:
    if "return" not in summary:
        raise PluginError(
            f"domain {runtime.domain.name!r}: an episode summary has no 'return' (it has {sorted(summary)}); fix: "
            "the reward adapter's episode summary() must report 'return' (reports and checkpoints rank by it)"
        )
    return summary


def evaluate_policy(
    runtime: TaskRuntime,
    policy: Policy,
    episodes: int,
    seed: int,
    num_envs: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Run ``episodes`` episodes of ``policy`` on fixed seeds; parallel over the task's workers.
    ``env_kwargs`` are merged over the evaluation env's (a validation part, a variant)."""
    num_envs = max(1, min(num_envs or runtime.task.env.num_envs, episodes))
    vector_env = runtime.make_vector_env(num_envs, autoreset="disabled", evaluation=True, extra=env_kwargs)
    adapter = runtime.reward_adapter()
    try:
        next_episode = num_envs
        episode_of_env = list(range(num_envs))
        observations, _ = vector_env.reset(seed=[seed + i for i in range(num_envs)])
        metrics = [adapter.new_episode() for _ in range(num_envs)]
        results: dict[int, dict[str, float]] = {}
        active = np.ones(num_envs, dtype=bool)
        while active.any():
            actions = checked_actions(runtime, policy, np.asarray(observations, dtype=np.float32))
            observations, rewards, terminated, truncated, infos = vector_env.step(actions)
            # Every finished worker is reset, also one with no episode left: it is still stepped.
            reset_mask = np.asarray(terminated) | np.asarray(truncated)
            for i in np.flatnonzero(active):
                metrics[i].add_step(float(rewards[i]), split_vector_info(infos, i))
                if reset_mask[i]:
                    results[episode_of_env[i]] = checked_summary(runtime, metrics[i].summary())
                    if next_episode < episodes:
                        episode_of_env[i], next_episode = next_episode, next_episode + 1
                        metrics[i] = adapter.new_episode()
                    else:
                        active[i] = False
            if reset_mask.any():
                # Only masked sub-envs reset; the others' seeds in this list are ignored.
                new_seeds = [seed + episode_of_env[i] for i in range(num_envs)]
                fresh, _ = vector_env.reset(seed=new_seeds, options={"reset_mask": reset_mask})
                observations = np.where(reset_mask.reshape(-1, *([1] * (np.ndim(fresh) - 1))), fresh, observations)
    finally:
        vector_env.close()
    order = sorted(results)
    return EvaluationResult([results[i] for i in order], [seed + i for i in order])
