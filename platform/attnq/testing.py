"""The domain contract, as checks a plugin author runs against their own domain.

In the spirit of gymnasium's ``check_env`` and scikit-learn's ``check_estimator``: every check takes
a task of the domain (its name or task file), builds it as attnq would, and either passes or
fails with the field at fault and the fix.

    from attnq.testing import check_domain, parametrize_with_checks

    check_domain("corridor")                 # every check; one error listing each failure

    @parametrize_with_checks(["corridor"])   # in a test module: one pytest case per check
    def test_my_domain(task, check):
        check(task)

The checks: gymnasium's env checker; ``make_env`` picklable (vector-env workers pickle it); the
same seed gives the same observations, in a new vector env and in one that ran episodes before,
and training's vector env the same episodes after an autoreset whether or not an evaluation ran in
between; tokens of the declared shape, dtype and mask; a label and
at most one position per token; an action name per action, an action mask of the right shape, and
for a slate an action space whose samples never repeat an item;
episode summaries with ``return`` and every ``metric_names`` entry; baselines that return actions
of the action space, one per observation; and 200 env steps of real training with a finite loss.
"""

from __future__ import annotations

import csv
import functools
import math
import pickle
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from attnq.catalog import load_named_task
from attnq.domain import Tokens, repeats_an_item
from attnq.errors import AttnqError
from attnq.evaluation import evaluate_policy
from attnq.registry import PluginHost, load_plugins
from attnq.runtime import TaskRuntime, prepare_task

# A training check small enough for a test suite: it shows that the domain's parts learn together.
TRAINING_OVERRIDES = (
    "trainer.max_env_steps=200",
    "learner.learning_starts=50",
    "replay.batch_size=8",
    "replay.capacity=1000",
    "eval.every_env_steps=0",
    "eval.keep_best=false",
    "trainer.progress_bar=false",
    "trainer.compile=false",
    "trainer.log_every_updates=1",
)
BATCH = 4  # observations per batch given to the encoder and the baselines
AUTORESET_WAIT_STEPS = 1000  # vector steps given to training's env to end an episode (none ended: nothing to compare)
STEPS_COMPARED = 10  # vector steps compared from the first autoreset on
SLATE_SAMPLES = 1000  # enough that a plain MultiDiscrete([n] * k) repeats an item for n up to about 1,000


class DomainCheckError(AssertionError):
    """One or more checks failed; the message lists each with its field and fix."""


class CheckFailed(Exception):
    def __init__(self, field: str, problem: str, fix: str) -> None:
        super().__init__(f"{field}: {problem}; fix: {fix}")


# ----- the checks, in the order a domain is built and used --------------------------------------
def check_gymnasium_api(runtime: TaskRuntime) -> None:
    from gymnasium.utils.env_checker import check_env

    env = runtime.make_env()  # as attnq builds it, wrappers included: that is the domain's env
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*env.unwrapped.*")  # wrappers are checked on purpose
            check_env(env, skip_render_check=True)
    except Exception as exc:
        raise CheckFailed(
            "DomainSpec.make_env", f"gymnasium's env checker says: {exc}", "follow the gymnasium Env API"
        ) from None
    finally:
        env.close()


def check_make_env_is_picklable(runtime: TaskRuntime) -> None:
    try:
        pickle.dumps(runtime.env_factory())
    except Exception as exc:
        raise CheckFailed(
            "DomainSpec.make_env",
            f"cannot be pickled ({type(exc).__name__}: {exc})",
            "make it a top-level function of a module (vector-env worker processes receive it pickled)",
        ) from None


def check_same_seed_same_observations(runtime: TaskRuntime) -> None:
    runs = []
    for _ in range(2):
        env, policy = runtime.make_env(), runtime.baseline("random", seed=0)
        try:
            observation, _ = env.reset(seed=123)
            seen = [np.asarray(observation)]
            for _ in range(5):
                observation, _, terminated, truncated, _ = env.step(policy(np.asarray(observation)[None])[0])
                seen.append(np.asarray(observation))
                if terminated or truncated:
                    break
            runs.append(seen)
        finally:
            env.close()
    if not _same_arrays(*runs):
        raise CheckFailed(
            "DomainSpec.make_env",
            "two envs reset with the same seed and given the same actions gave different observations",
            "draw every random number from the generator reset(seed=...) seeds (self.np_random)",
        )


def _same_arrays(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


def check_seeded_episodes_in_a_used_env(runtime: TaskRuntime) -> None:
    # evaluation resets one env with each batch's seeds
    if not _same_arrays(_last_seeded_steps(runtime, [7_000, 8_000]), _last_seeded_steps(runtime, [8_000])):
        raise CheckFailed(
            _vector_env_field(runtime),
            "a vector env reset with seeds after other episodes drew other episodes than a new env reset with them",
            "draw every random number of an episode from its reset(seed=...), also in an env that ran episodes before",
        )


def _last_seeded_steps(runtime: TaskRuntime, seeds: list[int]) -> list[np.ndarray]:
    """Observations and rewards of one evaluation vector env reset with ``seed + i`` for each seed in
    turn, under seeded random actions, up to ``STEPS_COMPARED`` vector steps or the first episode's
    end: those after the last seed."""
    env = runtime.make_vector_env(autoreset="disabled", evaluation=True)
    try:
        for seed in seeds:
            policy = runtime.baseline("random", seed=0)
            observations, _ = env.reset(seed=[seed + i for i in range(env.num_envs)])
            seen = [np.asarray(observations)]
            for _ in range(STEPS_COMPARED):
                observations, rewards, terminated, truncated, _ = env.step(policy(np.asarray(observations)))
                seen += [np.asarray(observations), np.asarray(rewards)]
                if np.any(terminated) or np.any(truncated):
                    break
    finally:
        env.close()
    return seen


def _vector_env_field(runtime: TaskRuntime) -> str:
    return "DomainSpec.make_vector_env" if runtime.domain.make_vector_env is not None else "DomainSpec.make_env"


def check_autoreset_episodes_follow_the_reset_seed(runtime: TaskRuntime) -> None:
    seen = [_episodes_after_an_autoreset(runtime, evaluate_in_between=flag) for flag in (False, True)]
    if not _same_arrays(*seen):
        raise CheckFailed(
            _vector_env_field(runtime),
            "training's vector env drew other episodes after an autoreset when an evaluation ran in between",
            "draw the episodes after an autoreset from the env's own generator, seeded by the last "
            "reset(seed=...), not from global state (numpy's, TensorFlow's) that another env seeds again",
        )


def _episodes_after_an_autoreset(runtime: TaskRuntime, evaluate_in_between: bool) -> list[np.ndarray]:
    """Observations and rewards of training's vector env, under random actions, from its first
    autoreset on; an evaluation (as during training) runs at that autoreset when asked."""
    env, policy = runtime.make_vector_env(), runtime.baseline("random", seed=0)
    seen: list[np.ndarray] = []
    try:
        observations, _ = env.reset(seed=[123 + i for i in range(env.num_envs)])
        for _ in range(AUTORESET_WAIT_STEPS):
            observations, rewards, terminated, truncated, _ = env.step(policy(np.asarray(observations)))
            ended = bool(np.any(terminated) or np.any(truncated))
            if not seen and ended and evaluate_in_between:
                evaluate_policy(
                    runtime, runtime.baseline("random", seed=1), episodes=1, seed=runtime.task.eval.seed_during_training
                )
            if seen or ended:
                seen += [np.asarray(observations), np.asarray(rewards)]
            if len(seen) >= 2 * STEPS_COMPARED:
                break
    finally:
        env.close()
    return seen


def check_tokens(runtime: TaskRuntime) -> None:
    encoder = runtime.build_q_network().encoder
    batch = sample_observations(runtime)
    tokens = encoder(torch.as_tensor(batch, dtype=torch.float32))
    declared = (len(batch), encoder.num_tokens, runtime.task.model.d_model)
    if not isinstance(tokens, Tokens):
        raise CheckFailed("StateEncoder.forward", f"returned {type(tokens).__name__}", "return attnq.Tokens")
    if tuple(tokens.embeddings_BTD.shape) != declared or tokens.embeddings_BTD.dtype != torch.float32:
        raise CheckFailed(
            "StateEncoder.forward",
            f"embeddings are {tuple(tokens.embeddings_BTD.shape)} {tokens.embeddings_BTD.dtype}, "
            f"expected {declared} torch.float32 (batch, num_tokens, d_model)",
            "set num_tokens to the number of tokens forward returns, of width d_model",
        )
    if tuple(tokens.mask_BT.shape) != declared[:2] or tokens.mask_BT.dtype != torch.bool:
        raise CheckFailed(
            "StateEncoder.forward",
            f"mask_BT is {tuple(tokens.mask_BT.shape)} {tokens.mask_BT.dtype}, expected {declared[:2]} torch.bool",
            "give a boolean mask, True where a token exists",
        )
    if not bool(tokens.mask_BT.any(dim=1).all()):
        raise CheckFailed("StateEncoder.forward", "an observation has no token present", "mark present tokens True")
    if not bool(torch.isfinite(tokens.embeddings_BTD).all()):
        raise CheckFailed("StateEncoder.forward", "embeddings are not finite", "scale or clip the features")


def check_labels_and_positions(runtime: TaskRuntime) -> None:
    encoder = runtime.build_q_network().encoder
    observation = sample_observations(runtime)[0]
    labels = encoder.token_labels(observation)
    if len(labels) != encoder.num_tokens or not all(isinstance(label, str) for label in labels):
        raise CheckFailed(
            "StateEncoder.token_labels",
            f"gave {len(labels)} labels for {encoder.num_tokens} tokens",
            "return one string per token of the observation, in token order",
        )
    positions = encoder.token_positions(observation)
    if positions is not None and (
        len(positions) != encoder.num_tokens or any(p is not None and len(p) != 2 for p in positions)
    ):
        raise CheckFailed(
            "StateEncoder.token_positions",
            f"gave {len(positions)} positions for {encoder.num_tokens} tokens",
            "return None, or one (x, y) or None per token",
        )


def check_actions(runtime: TaskRuntime) -> None:
    names = runtime.action_names()
    if len(names) != runtime.num_actions:
        raise CheckFailed(
            "DomainSpec.action_names",
            f"gave {len(names)} names for {runtime.num_actions} actions",
            "return one name per action of the env's action space",
        )
    if runtime.slate_size > 1:
        _check_slate_samples(runtime)
    encoder = runtime.build_q_network().encoder
    batch = sample_observations(runtime)
    mask = encoder.action_mask(torch.as_tensor(batch, dtype=torch.float32))
    if mask is None:
        return
    if tuple(mask.shape) != (len(batch), runtime.num_actions) or mask.dtype != torch.bool:
        raise CheckFailed(
            "StateEncoder.action_mask",
            f"is {tuple(mask.shape)} {mask.dtype}, expected {(len(batch), runtime.num_actions)} torch.bool",
            "return None or a boolean [batch, actions] mask",
        )
    if bool((mask.sum(dim=1) < runtime.slate_size).any()):
        raise CheckFailed(
            "StateEncoder.action_mask",
            f"leaves fewer than {runtime.slate_size} admissible actions for an observation",
            "allow at least one action (a slate's size for slates) in every state",
        )


def _check_slate_samples(runtime: TaskRuntime) -> None:
    """Random-action tools (gymnasium's checker, exploration wrappers) sample the action space, so
    every sample must be a slate the env accepts: k distinct items."""
    env = runtime.make_env()
    try:
        env.action_space.seed(0)
        samples = [np.asarray(env.action_space.sample()) for _ in range(SLATE_SAMPLES)]
    finally:
        env.close()
    repeat = next((s for s in samples if repeats_an_item(s)), None)
    if repeat is not None:
        raise CheckFailed(
            "DomainSpec.make_env",
            f"its action space {env.action_space} sampled the slate {repeat.tolist()}, which repeats an item",
            f"declare the action space as attnq.domain.Slate({runtime.num_actions}, {runtime.slate_size})",
        )


def check_episode_summaries(runtime: TaskRuntime) -> None:
    from attnq.evaluation import evaluate_policy

    adapter = runtime.reward_adapter()
    evaluation = evaluate_policy(runtime, runtime.baseline("random", seed=0), episodes=2, seed=0, num_envs=1)
    for summary in evaluation.episodes:
        missing = [name for name in ("return", *adapter.metric_names) if name not in summary]
        if missing:
            raise CheckFailed(
                "RewardAdapter.new_episode().summary()",
                f"has no {missing} (it has {sorted(summary)})",
                "report 'return' and every name in metric_names",
            )
        bad = [name for name, value in summary.items() if not math.isfinite(float(value))]
        if bad:
            raise CheckFailed("RewardAdapter.new_episode().summary()", f"{bad} are not finite", "report numbers")


def check_baselines(runtime: TaskRuntime) -> None:
    batch = sample_observations(runtime)
    expected = (len(batch),) if runtime.slate_size == 1 else (len(batch), runtime.slate_size)
    for name in runtime.baseline_names():
        actions = np.asarray(runtime.baseline(name, seed=0)(batch))
        field = f"DomainSpec.baselines[{name!r}]"
        if actions.shape != expected or not np.issubdtype(actions.dtype, np.integer):
            raise CheckFailed(
                field,
                f"returned {actions.shape} {actions.dtype} for {len(batch)} observations, expected {expected} integers",
                "map an observation batch [N, ...] to actions [N] (slates: [N, k])",
            )
        if actions.min() < 0 or actions.max() >= runtime.num_actions:
            raise CheckFailed(field, f"returned actions outside [0, {runtime.num_actions})", "return valid actions")


def check_training(runtime: TaskRuntime) -> None:
    from attnq.config import apply_overrides, validate_task
    from attnq.training.run import train

    task = validate_task(apply_overrides(runtime.task.to_dict(), list(TRAINING_OVERRIDES)), runtime.task.name)
    with tempfile.TemporaryDirectory() as folder:
        try:
            result = train(task, runs_dir=Path(folder), runtime=runtime)
        except AttnqError as exc:
            raise CheckFailed("training", str(exc), "see the message above") from None
        losses = []
        for path in result.run_dir.glob("logs*/metrics.csv"):
            with path.open(newline="", encoding="utf-8") as handle:
                losses += [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    if result.env_steps < task.trainer.max_env_steps or not losses or not all(map(math.isfinite, losses)):
        raise CheckFailed(
            "training",
            f"{result.env_steps} env steps, losses {losses[:5]}...",
            "the training reward and tokens must be finite numbers",
        )


CHECKS: tuple[Callable[[TaskRuntime], None], ...] = (
    check_gymnasium_api,
    check_make_env_is_picklable,
    check_same_seed_same_observations,
    check_seeded_episodes_in_a_used_env,
    check_autoreset_episodes_follow_the_reset_seed,
    check_tokens,
    check_labels_and_positions,
    check_actions,
    check_episode_summaries,
    check_baselines,
    check_training,
)


# ----- running them ------------------------------------------------------------------------------
def sample_observations(runtime: TaskRuntime, count: int = BATCH) -> np.ndarray:
    """``count`` observations of one random-action episode (from its start), as a batch."""
    env, policy = runtime.make_env(), runtime.baseline("random", seed=0)
    try:
        observation, _ = env.reset(seed=0)
        seen = [np.asarray(observation, dtype=np.float32)]
        while len(seen) < count:
            observation, _, terminated, truncated, _ = env.step(policy(np.asarray(observation)[None])[0])
            if terminated or truncated:
                observation, _ = env.reset(seed=len(seen))
            seen.append(np.asarray(observation, dtype=np.float32))
        return np.stack(seen)
    finally:
        env.close()


@functools.lru_cache(maxsize=8)
def _runtime(task: str, overrides: tuple[str, ...]) -> TaskRuntime:
    host = _host()
    return prepare_task(load_named_task(task, host, list(overrides)), host)


@functools.lru_cache(maxsize=1)
def _host() -> PluginHost:
    return load_plugins()


def run_check(check: Callable[[TaskRuntime], None], task: str | Path, overrides: Sequence[str] = ()) -> None:
    """Run one check on a task (its name or task file); raise :class:`DomainCheckError` if it fails."""
    try:
        runtime = _runtime(str(task), tuple(overrides))
    except AttnqError as exc:  # the task or the domain's parts fail as attnq builds them
        raise DomainCheckError(f"{task}: the task could not be built: {exc}") from None
    try:
        check(runtime)
    except CheckFailed as failure:
        raise DomainCheckError(f"{task}: {check.__name__}: {failure}") from None


def check_domain(task: str | Path, overrides: Sequence[str] = ()) -> list[str]:
    """Run every check on a task of the domain; returns the names of the passed checks, or raises
    one :class:`DomainCheckError` listing every failure with its field and fix.

    :param task: a task name (found as ``attnq train`` finds it) or a task file
    :param overrides: ``--set`` style overrides applied to the task first
    """
    failures = []
    for check in CHECKS:
        try:
            run_check(check, task, overrides)
        except DomainCheckError as failure:
            failures.append(str(failure))
    if failures:
        raise DomainCheckError(f"{len(failures)} of {len(CHECKS)} checks failed:\n- " + "\n- ".join(failures))
    return [check.__name__ for check in CHECKS]


def parametrize_with_checks(tasks: Iterable[str | Path]):
    """A pytest decorator: one case per (task, check), the check called as ``check(task)``."""
    import pytest

    cases = [(str(task), functools.partial(run_check, check)) for task in tasks for check in CHECKS]
    ids = [f"{task}-{check.args[0].__name__}" for task, check in cases]
    return pytest.mark.parametrize(("task", "check"), cases, ids=ids)


__all__ = ["CHECKS", "DomainCheckError", "check_domain", "parametrize_with_checks", "run_check"]
