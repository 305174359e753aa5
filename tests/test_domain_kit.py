"""The plugin author's kit (attnq.testing): every built-in domain passes it, and each check catches
the mistake it is for, naming the field at fault."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import types

import gymnasium as gym
import numpy as np
import pytest

from attnq import hookimpl
from attnq.config import load_task
from attnq.domain import ReturnAndLength, Slate, SumRewardAdapter, Tokens
from attnq.errors import PluginError
from attnq.registry import load_plugins
from attnq.runtime import prepare_task
from attnq.testing import (
    CHECKS,
    CheckFailed,
    check_actions,
    check_autoreset_episodes_follow_the_reset_seed,
    check_baselines,
    check_domain,
    check_episode_summaries,
    check_make_env_is_picklable,
    check_same_seed_same_observations,
    check_seeded_episodes_in_a_used_env,
    parametrize_with_checks,
)
from attnq_recsim.plugin import make_env as recsim_env
from attnq_sepsis.plugin import make_encoder as sepsis_encoder
from attnq_sepsis.plugin import make_env as sepsis_env
from conftest import TASKS


@parametrize_with_checks(
    ["highway-fast", "intersection", "sepsis", "scan-simple", "recsim-interest", "gym:CartPole-v1"]
)
def test_every_built_in_domain_passes_the_kit(task, check):
    check(task)


SLATE_SIZES = [(n, k, b) for n in (1, 2, 3, 5, 12, 60) for k in sorted({1, 2, 3, n}) if k <= n for b in (None, 1, 4)]


@pytest.mark.parametrize("num_items,slate_size,batch", SLATE_SIZES)
def test_a_slate_space_holds_exactly_the_slates_without_a_repeated_item(num_items, slate_size, batch):
    space = Slate(num_items, slate_size, batch=batch, seed=num_items * 10 + slate_size)
    assert isinstance(space, gym.spaces.MultiDiscrete) and space.shape == (*([batch] if batch else []), slate_size)

    def brute_force_contains(x):  # every entry an item, and no row naming one twice
        rows = x.reshape(-1, slate_size).tolist()
        return (
            x.shape == space.shape
            and all(0 <= i < num_items for r in rows for i in r)
            and all(len(set(r)) == slate_size for r in rows)
        )

    rng = np.random.default_rng(num_items)
    for _ in range(300):  # arrays near the boundary: out-of-range items and repeats, both common
        x = rng.integers(-1, num_items + 1, size=space.shape)
        assert space.contains(x) == brute_force_contains(x), x
    samples = [space.sample() for _ in range(1500)]
    assert all(space.contains(x) and brute_force_contains(x) for x in samples)
    if batch is None and num_items <= 5:  # uniform: every ordered slate turns up
        assert {tuple(x) for x in samples} == set(itertools.permutations(range(num_items), slate_size))


# ----- each check against a domain broken in the one way it is for ---------------------------------
def _broken_runtime(base_domain="sepsis", task="sepsis", **changes):
    """A built-in domain with some parts replaced, registered by a plugin of its own."""
    base = load_plugins().registry.get(base_domain)
    spec = dataclasses.replace(base, name="broken", **changes)

    @hookimpl
    def attnq_register_domains(registry):
        registry.add(spec)

    host = load_plugins(
        extra_plugins=[("broken", types.SimpleNamespace(attnq_register_domains=attnq_register_domains))]
    )
    return prepare_task(load_task(TASKS / f"{task}.yaml", ["domain=broken"]), host)


def _encoder_with(**methods):
    def make(context, d_model):
        encoder = sepsis_encoder(context, d_model)
        for name, method in methods.items():
            setattr(encoder, name, types.MethodType(method, encoder))
        return encoder

    return make


class _NoGoal(ReturnAndLength):
    pass


class _PromisesAGoal(SumRewardAdapter):
    metric_names = ("return", "length", "goal_reached")

    def new_episode(self):
        return _NoGoal()


def _multidiscrete_slates(env_id, env_kwargs, options):
    """RecSim's env declaring its slates as a plain MultiDiscrete, whose samples may repeat a document."""
    env = recsim_env(env_id, env_kwargs, options)
    env.action_space = gym.spaces.MultiDiscrete(env.action_space.nvec)
    return env


class _Unseeded(gym.ObservationWrapper):
    def observation(self, observation):
        return observation + np.float32(np.random.random())  # numpy's global generator: reset never seeds it


class _GlobalStream(gym.Wrapper):
    """Seeds numpy's global generator on a seeded reset and starts every episode from it: the episodes
    after an autoreset follow whichever env was seeded last (RecSim NG's users did, by TensorFlow's seed)."""

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            np.random.seed(seed)
        return self.env.reset(seed=int(np.random.randint(2**31)), options=options)


class _SeededOnce(gym.Wrapper):
    """Takes only the first seed it is given: an env reset again with another seed goes on from the
    first one's stream (RecSim NG's traced graphs kept the seeds of their first trace)."""

    def reset(self, *, seed=None, options=None):
        first = not hasattr(self, "_seeded")
        self._seeded = True
        return self.env.reset(seed=seed if first else None, options=options)


def _sepsis_env_in(wrapper):
    """A ``make_env`` of the sepsis env inside ``wrapper`` (picklable, as vector-env workers need)."""
    return functools.partial(_wrapped_sepsis_env, wrapper)


def _wrapped_sepsis_env(wrapper, env_id, env_kwargs, options):
    return wrapper(sepsis_env(env_id, env_kwargs, options))


def _float_mask(context, d_model):
    encoder = sepsis_encoder(context, d_model)
    forward = encoder.forward

    def with_float_mask(observations):
        tokens = forward(observations)
        return Tokens(tokens.embeddings_BTD, tokens.mask_BT.float())  # 1.0 / 0.0, not True / False

    encoder.forward = with_float_mask
    return encoder


@pytest.mark.parametrize(
    ("check", "changes", "field", "problem"),
    [
        (
            check_episode_summaries,
            {"make_reward_adapter": lambda context: _PromisesAGoal()},
            "RewardAdapter.new_episode().summary()",
            "has no ['goal_reached']",
        ),
        (
            check_baselines,
            {"baselines": {"flat": lambda context, seed: lambda observations: np.zeros((1, 3), dtype=np.int64)}},
            "DomainSpec.baselines['flat']",
            "returned (1, 3) int64",
        ),
        (
            check_make_env_is_picklable,
            {"make_env": lambda env_id, env_kwargs, options: sepsis_env(env_id, env_kwargs, options)},
            "DomainSpec.make_env",
            "cannot be pickled",
        ),
        (
            check_same_seed_same_observations,
            {"make_env": _sepsis_env_in(_Unseeded)},
            "DomainSpec.make_env",
            "different observations",
        ),
        (
            check_seeded_episodes_in_a_used_env,
            {"make_env": _sepsis_env_in(_SeededOnce)},
            "DomainSpec.make_env",
            "drew other episodes than a new env",
        ),
        (
            check_autoreset_episodes_follow_the_reset_seed,
            {"make_env": _sepsis_env_in(_GlobalStream)},
            "DomainSpec.make_env",
            "other episodes after an autoreset",
        ),
    ],
    ids=["summary", "baseline", "pickle", "seeding", "used-env", "autoreset"],
)
def test_each_check_names_the_field_at_fault(check, changes, field, problem):
    runtime = _broken_runtime(**changes)
    with pytest.raises(CheckFailed) as failed:
        check(runtime)
    message = str(failed.value)
    assert message.startswith(f"{field}: ") and problem in message and "fix: " in message


def test_a_slate_action_space_whose_samples_repeat_an_item_is_refused():
    runtime = _broken_runtime("recsim", "recsim-interest", make_env=_multidiscrete_slates, make_vector_env=None)
    with pytest.raises(CheckFailed) as failed:
        check_actions(runtime)
    message = str(failed.value)
    assert message.startswith("DomainSpec.make_env: its action space MultiDiscrete([")
    assert "which repeats an item" in message and message.endswith(
        f"fix: declare the action space as attnq.domain.Slate({runtime.num_actions}, 2)"
    )


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"make_encoder": _encoder_with(token_labels=lambda self, observation: ["one"])},
            "gave 1 labels for 47 tokens",
        ),
        ({"make_encoder": _float_mask}, "token mask is (1, 47) torch.float32"),
    ],
    ids=["labels", "mask"],
)
def test_an_encoder_that_breaks_the_contract_is_refused_when_the_task_is_built(changes, says):
    with pytest.raises(PluginError, match=re.escape(says)) as refused:
        _broken_runtime(**changes)
    assert "fix: " in str(refused.value)


def test_a_policy_or_summary_that_breaks_the_contract_is_refused_at_evaluation():
    from attnq.evaluation import evaluate_policy

    runtime = _broken_runtime(make_reward_adapter=lambda context: _PromisesAGoal())
    flat = lambda observations: np.zeros((1, 3), dtype=np.int64)  # noqa: E731
    with pytest.raises(PluginError, match=r"returned actions of shape \(1, 3\) for 1 observations"):
        evaluate_policy(runtime, flat, episodes=1, seed=0)
    no_return = _broken_runtime(
        make_reward_adapter=lambda context: types.SimpleNamespace(
            metric_names=("length",), training_reward=lambda r, i: r, new_episode=lambda: _LengthOnly()
        )
    )
    with pytest.raises(PluginError, match="an episode summary has no 'return'"):
        evaluate_policy(no_return, no_return.baseline("random", 0), episodes=1, seed=0)


class _LengthOnly(ReturnAndLength):
    def summary(self):
        return {"length": float(self.length)}


def test_check_domain_lists_every_failure_at_once():
    from attnq.testing import DomainCheckError

    expected = rf"1 of {len(CHECKS)} checks failed:\n- sepsis: check_training: training: "
    with pytest.raises(DomainCheckError, match=expected):
        check_domain("sepsis", ["learner.lr=1e30"])  # the loss diverges within the check's 200 env steps


# ----- the generic gym domain ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["gym:FrozenLake-v1"], "field 'env.id'"),  # Discrete observations
        (["gym:CartPole-v1", "--set", "domain_options.feature_names=[a,b]"], "field 'domain_options.feature_names'"),
        (["nope:CartPole-v1"], "unknown domain 'nope'"),
    ],
)
def test_the_gym_domain_refuses_what_it_cannot_take(tmp_path, args, says):
    import subprocess

    from conftest import attnq_command

    refused = subprocess.run(
        attnq_command("train", *args, "--runs-dir", str(tmp_path)), capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2 and says in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert not any(tmp_path.iterdir())


def test_the_gym_domain_names_tokens_by_the_task_s_feature_names():
    names = ["cart position", "cart velocity", "pole angle", "pole angular velocity"]
    from attnq.catalog import find_task

    host = load_plugins()
    task = load_task(find_task("gym:CartPole-v1", host), [f"domain_options.feature_names={names}"])
    runtime = prepare_task(task, host)
    observation, _ = runtime.make_env().reset(seed=0)
    labels = runtime.build_q_network().encoder.token_labels(observation)
    assert [label.rsplit(" ", 1)[0] for label in labels] == names and task.name == "cartpole-v1"


class _DictCartPole(gym.ObservationWrapper):
    """CartPole with a Dict observation: the cart's two features and the pole's two."""

    def __init__(self) -> None:
        super().__init__(gym.make("CartPole-v1").unwrapped)
        box = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.observation_space = gym.spaces.Dict({"cart": box, "pole": box})

    def observation(self, observation):
        return {"cart": observation[:2].copy(), "pole": observation[2:].copy()}


gym.register("AttnqTest/DictCartPole-v0", entry_point=_DictCartPole, max_episode_steps=200)


def test_a_dict_observation_gives_one_token_per_key_and_meets_the_contract():
    check_domain("gym:AttnqTest/DictCartPole-v0")
    from attnq.catalog import find_task

    host = load_plugins()
    runtime = prepare_task(load_task(find_task("gym:AttnqTest/DictCartPole-v0", host)), host)
    encoder = runtime.build_q_network().encoder
    observation, _ = runtime.make_env().reset(seed=0)
    assert encoder.num_tokens == 2 and [label.split()[0] for label in encoder.token_labels(observation)] == [
        "cart",
        "pole",
    ]


def _raw_and_normalized(env_id: str, mode: str, steps: int = 400):
    """The same random-action trajectory through the raw env and through the task's normalised one."""
    from attnq.catalog import load_named_task

    host = load_plugins()
    runtime = prepare_task(load_named_task(f"gym:{env_id}", host, [f"domain_options.normalize={mode}"]), host)
    raw, normalized = gym.make(env_id), runtime.make_env()
    raw.action_space.seed(5)
    pairs = [(raw.reset(seed=5)[0], normalized.reset(seed=5)[0])]
    for _ in range(steps):
        action = raw.action_space.sample()
        (x, _, done, cut, _), (y, *_) = raw.step(action), normalized.step(action)
        pairs.append((x, y))
        if done or cut:
            pairs.append((raw.reset(seed=len(pairs))[0], normalized.reset(seed=len(pairs))[0]))
    return runtime, np.array([p[0] for p in pairs], np.float64), np.array([p[1] for p in pairs], np.float64)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"])
def test_bounds_normalisation_maps_each_bounded_feature_to_minus_one_one(env_id):
    runtime, raw, normalized = _raw_and_normalized(env_id, "bounds")
    space = gym.make(env_id).observation_space
    for i, (low, high) in enumerate(zip(space.low, space.high)):
        if np.isfinite(low) and np.isfinite(high):  # brute force: the affine map that sends low, high to -1, 1
            expected = 2 * (raw[:, i] - low) / (high - low) - 1
        else:
            expected = raw[:, i]  # unbounded: as it is
        np.testing.assert_allclose(normalized[:, i], expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.abs(normalized[:, np.isfinite(space.low) & np.isfinite(space.high)]) <= 1 + 1e-6)
    assert runtime.context.probe_env.observation_space.contains(normalized[0].astype(np.float32))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1"])
def test_sample_normalisation_is_the_same_wherever_the_env_is_made(env_id):
    """Mean 0 and std 1 from random-action steps on fixed seeds: training, evaluation and a reloaded
    agent compute the same statistics, so nothing needs saving."""
    _, raw, first = _raw_and_normalized(env_id, "sample")
    _, _, again = _raw_and_normalized(env_id, "sample")
    np.testing.assert_array_equal(first, again)
    # an affine map per feature whose slope is positive: recover it from the data and compare
    for i in range(raw.shape[1]):
        slope, _ = np.polyfit(raw[:, i], first[:, i], 1)
        assert slope > 0 and np.allclose(first[:, i], np.polyval(np.polyfit(raw[:, i], first[:, i], 1), raw[:, i]))
    assert np.all(np.abs(first.mean(axis=0)) < 1.0) and np.all(first.std(axis=0) > 0.2)


def test_an_evaluation_env_cut_shorter_is_scaled_as_the_training_env():
    """The statistics come from random-action steps under the env's registered time limit, so a
    validation env cut at 5 steps (whose own random episodes would see only starting states) maps
    each raw observation to the same input as the training env does."""
    from attnq.catalog import load_named_task

    host = load_plugins()
    runtime = prepare_task(load_named_task("gym:CartPole-v1", host, ["domain_options.normalize=sample"]), host)
    training, cut = runtime.make_env(), runtime.make_env(extra={"max_episode_steps": 5})
    for seed in range(5):
        np.testing.assert_array_equal(training.reset(seed=seed)[0], cut.reset(seed=seed)[0])
    assert cut.step(0)[0].tolist() == training.step(0)[0].tolist()


def test_a_normalised_gym_task_meets_the_contract():
    check_domain("gym:Acrobot-v1", ["domain_options.normalize=sample", "domain_options.normalize_steps=500"])
