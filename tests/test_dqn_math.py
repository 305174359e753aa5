"""DQN arithmetic on hand-made tensors: dueling, targets, loss, n-step folding, replay, schedules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from attnq.domain import RandomPolicy
from attnq.learning.dqn_loss import advantage_learning_target, dqn_loss, td_target
from attnq.learning.exploration import LinearEpsilon, epsilon_greedy
from attnq.learning.replay import NStepFolder, PrioritizedReplayBuffer, ReplayBuffer, SumTree
from attnq.learning.target_network import TargetUpdater, WeightAverage, hard_update, polyak_update
from attnq.model.transformer_dqn import DuelingHead, greedy_slate, masked_argmax


def test_dueling_head_combines_value_and_centred_advantage():
    head = DuelingHead(width=2, num_actions=3)
    with torch.no_grad():
        for layer in (head.value, head.advantage):
            layer[0].weight.copy_(torch.eye(2))
            layer[0].bias.zero_()
        head.value[2].weight.copy_(torch.tensor([[1.0, 0.0]]))
        head.value[2].bias.fill_(0.5)
        head.advantage[2].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        head.advantage[2].bias.zero_()
    q = head(torch.tensor([[2.0, 4.0]]))
    # V = 2 + 0.5; A = [2, 4, 0], mean 2 -> Q = 2.5 + [0, 2, -2]
    assert torch.allclose(q, torch.tensor([[2.5, 4.5, 0.5]]))


def test_double_dqn_target_selects_with_online_and_evaluates_with_target():
    rewards, discounts = torch.tensor([1.0, 0.0]), torch.tensor([0.9, 0.0])
    next_q_target = torch.tensor([[10.0, 2.0], [5.0, 7.0]])
    next_q_online = torch.tensor([[0.0, 1.0], [3.0, 1.0]])
    double = td_target(rewards, discounts, next_q_target, next_q_online)
    vanilla = td_target(rewards, discounts, next_q_target, None)
    assert torch.allclose(double, torch.tensor([1.0 + 0.9 * 2.0, 0.0]))  # terminal: no bootstrap
    assert torch.allclose(vanilla, torch.tensor([1.0 + 0.9 * 10.0, 0.0]))


def test_target_never_bootstraps_from_an_inadmissible_action():
    next_q = torch.tensor([[10.0, 2.0, 3.0]])
    mask = torch.tensor([[False, True, True]])
    assert td_target(torch.zeros(1), torch.ones(1), next_q, next_q, mask).item() == 3.0
    assert masked_argmax(next_q, mask).item() == 2


def test_advantage_learning_lowers_only_the_non_greedy_actions_targets_by_alpha_times_their_gap():
    td_target_B = torch.tensor([1.0, 1.0, 1.0])
    q_target = torch.tensor([[0.9, 0.5, 2.0], [0.9, 0.5, 2.0], [0.9, 0.5, 2.0]])
    mask = torch.tensor([[True, True, False]] * 3)  # the 2.0 is inadmissible: V(s) = 0.9
    actions = torch.tensor([0, 1, 1])
    target = advantage_learning_target(td_target_B, q_target, actions, mask, alpha=0.5)
    assert torch.allclose(target, torch.tensor([1.0, 1.0 - 0.5 * 0.4, 1.0 - 0.5 * 0.4]))
    unmasked = advantage_learning_target(td_target_B, q_target, actions, None, alpha=0.5)
    assert torch.allclose(unmasked, torch.tensor([1.0 - 0.5 * 1.1, 1.0 - 0.5 * 1.5, 1.0 - 0.5 * 1.5]))


def test_slate_values_decompose_over_items_and_the_best_slate_is_the_top_items():
    q_online = torch.tensor([[1.0, 5.0, 3.0, 4.0]])
    q_target = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    assert greedy_slate(q_online, None, 2).tolist() == [[1, 3]]
    assert greedy_slate(q_online, torch.tensor([[True, False, True, True]]), 2).tolist() == [[3, 2]]
    # SlateQ with uniform choice: Q(s', A') = mean of the items the online net picks, valued by the target
    target = td_target(torch.tensor([1.0]), torch.tensor([0.5]), q_target, q_online, slate_size=2)
    assert torch.allclose(target, torch.tensor([1.0 + 0.5 * (20.0 + 40.0) / 2]))
    # the loss regresses the mean of the taken slate's item values
    q_values = torch.tensor([[0.0, 2.0, 4.0, 6.0]], requires_grad=True)
    result = dqn_loss(q_values, torch.tensor([[1, 3]]), torch.tensor([5.0]), torch.ones(1), huber_delta=10.0)
    assert torch.allclose(result.q_taken, torch.tensor([4.0])) and torch.allclose(result.td_errors, torch.tensor([1.0]))
    result.loss.backward()
    assert q_values.grad[0, 0] == 0 and q_values.grad[0, 2] == 0 and q_values.grad[0, 1] == q_values.grad[0, 3] != 0


def test_only_the_consumed_item_of_a_slate_is_credited():
    from attnq.learning.dqn_loss import NOT_CREDITED, slate_value
    from attnq.training.collector import credited_slate

    slate = np.array([7, 2])
    assert credited_slate(slate, {"slate_choice": 1}).tolist() == [2, NOT_CREDITED]
    assert credited_slate(slate, {"slate_choice": 2}).tolist() == [7, 2]  # nothing consumed: the whole slate
    assert credited_slate(slate, {}).tolist() == [7, 2]
    assert credited_slate(np.int64(3), {"slate_choice": 0}) == 3  # single actions are left alone
    q_values = torch.tensor([[0.0, 1.0, 2.0, 3.0]] * 2)
    values = slate_value(q_values, torch.tensor([[3, NOT_CREDITED], [1, 3]]))
    assert values.tolist() == [3.0, 2.0]


def test_slate_transitions_round_trip_through_replay_and_epsilon_greedy():
    buffer = ReplayBuffer(4, (2,), seed=0, action_shape=(2,))
    buffer.add(np.zeros(2), np.array([3, 1]), 1.0, np.ones(2), 0.9)
    assert buffer.sample(3).actions.tolist() == [[3, 1]] * 3
    greedy, random_slates = np.array([[0, 1], [2, 3]]), np.array([[7, 8], [9, 6]])
    mixed = epsilon_greedy(greedy, 1.0, np.random.default_rng(0), random_slates)
    assert mixed.tolist() == random_slates.tolist()  # whole slates are swapped, never single items


def test_huber_loss_is_weighted_and_returns_td_errors():
    q_values = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    result = dqn_loss(
        q_values, torch.tensor([1, 0]), torch.tensor([2.5, 3.0]), torch.tensor([1.0, 0.5]), huber_delta=1.0
    )
    # errors 0.5 (quadratic: 0.125) and 3.0 (linear: 2.5, weighted 1.25)
    assert torch.allclose(result.td_errors, torch.tensor([0.5, 3.0]))
    assert result.loss.item() == pytest.approx((0.125 + 1.25) / 2)
    result.loss.backward()
    assert q_values.grad[0, 0] == 0 and q_values.grad[1, 1] == 0  # only taken actions get gradient


def test_n_step_folding_keeps_termination_and_truncation_apart():
    folder = NStepFolder(n_step=2, gamma=0.5, num_envs=1)
    obs = [np.full(1, i, dtype=np.float32) for i in range(5)]
    assert folder.push(0, obs[0], 0, 1.0, obs[1], False, False) == []
    [(o, a, ret, nxt, disc)] = folder.push(0, obs[1], 1, 2.0, obs[2], False, False)
    assert o[0] == 0 and ret == 1.0 + 0.5 * 2.0 and nxt[0] == 2 and disc == 0.25
    terminal = folder.push(0, obs[2], 0, 4.0, obs[3], True, False)
    assert [(t[0][0], t[2], t[4]) for t in terminal] == [(1, 2.0 + 0.5 * 4.0, 0.0), (2, 4.0, 0.0)]
    folder.push(0, obs[0], 0, 1.0, obs[1], False, False)
    truncated = folder.push(0, obs[1], 0, 1.0, obs[2], False, True)
    assert [t[4] for t in truncated] == [0.25, 0.5]  # a time limit still bootstraps


def test_replay_buffer_wraps_and_round_trips_its_state():
    buffer = ReplayBuffer(capacity=3, observation_shape=(2,), seed=0)
    for i in range(5):
        buffer.add(np.full(2, i), i, float(i), np.full(2, i + 1), 0.9)
    assert len(buffer) == 3 and sorted(buffer.actions.tolist()) == [2, 3, 4]
    sample = buffer.sample(8)
    assert sample.observations.shape == (8, 2) and set(sample.actions.tolist()) <= {2, 3, 4}
    assert np.all(sample.next_observations[:, 0] == sample.observations[:, 0] + 1)
    clone = ReplayBuffer(capacity=3, observation_shape=(2,), seed=99)
    clone.load_state_dict(buffer.state_dict())
    assert np.array_equal(clone.sample(5).indices, buffer.sample(5).indices)


def test_sum_tree_prefix_search():
    tree = SumTree(4)
    tree.update(np.arange(4), np.array([1.0, 0.0, 3.0, 6.0]))
    assert tree.total == 10.0
    assert tree.find(np.array([0.5, 1.0, 3.9, 4.0, 9.99])).tolist() == [0, 2, 2, 3, 3]


def _brute_force_find(priorities: np.ndarray, prefix_sums: np.ndarray) -> np.ndarray:
    """The first index whose running sum of priorities exceeds each prefix sum."""
    return np.searchsorted(np.cumsum(priorities), prefix_sums, side="right")


@pytest.mark.parametrize("capacities", [range(1, 1025), range(1025, 2049), range(2049, 4097), [15_000, 100_003]])
def test_sum_tree_matches_a_brute_force_prefix_search_for_every_capacity(capacities):
    rng = np.random.default_rng(capacities[0])
    for capacity in capacities:
        tree = SumTree(capacity)
        # whole-number priorities keep every sum exact, so the tree must agree with the brute force exactly
        priorities = rng.integers(0, 4, size=capacity).astype(float)
        priorities[rng.integers(capacity)] = 1.0 + rng.integers(3)  # never all zero
        tree.update(np.arange(capacity), priorities)
        touched = rng.integers(0, capacity, size=min(capacity, 5))  # then a partial update, repeats included
        values = rng.integers(0, 4, size=len(touched)).astype(float)
        tree.update(touched, values)
        for index, value in zip(touched, values):
            priorities[index] = value
        if priorities.sum() == 0:
            continue
        assert tree.total == priorities.sum() and np.array_equal(tree.leaves(), priorities)
        queries = np.concatenate([rng.uniform(0.0, priorities.sum(), size=32), np.cumsum(priorities)[:-1][:16]])
        queries = queries[queries < priorities.sum()]
        found = tree.find(queries)
        assert np.array_equal(found, _brute_force_find(priorities, queries)), capacity
        assert np.all(priorities[found] > 0)  # a transition of priority 0 is never drawn


@pytest.mark.parametrize("capacity", [3, 7, 100, 15_000])
def test_prioritized_replay_samples_in_proportion_to_priority_for_any_capacity(capacity):
    buffer = PrioritizedReplayBuffer(capacity=capacity, observation_shape=(1,), seed=1, alpha=0.6, beta_start=0.4)
    filled = min(capacity, 50)
    for i in range(filled):
        buffer.add(np.full(1, i), i, 0.0, np.zeros(1), 1.0)
    errors = np.linspace(0.1, 5.0, filled)
    buffer.update_priorities(np.arange(filled), errors)
    expected = (errors + 1e-6) ** 0.6 / ((errors + 1e-6) ** 0.6).sum()
    counts = np.bincount(np.concatenate([buffer.sample(500).indices for _ in range(40)]), minlength=filled)
    assert counts.sum() == 20_000 and np.abs(counts / counts.sum() - expected).max() < 0.01
    clone = PrioritizedReplayBuffer(capacity=capacity, observation_shape=(1,), seed=1, alpha=0.6, beta_start=0.4)
    clone.load_state_dict(buffer.state_dict())  # a resumed run samples the same
    assert np.array_equal(clone.sample(64).indices, buffer.sample(64).indices)


def test_prioritized_replay_prefers_large_td_errors_and_weights_them_down():
    buffer = PrioritizedReplayBuffer(capacity=4, observation_shape=(1,), seed=0, alpha=1.0, beta_start=1.0)
    for i in range(4):
        buffer.add(np.zeros(1), i, 0.0, np.zeros(1), 1.0)
    buffer.update_priorities(np.arange(4), np.array([1.0, 1.0, 1.0, 7.0]))  # P = 0.1, 0.1, 0.1, 0.7
    sample = buffer.sample(1000)
    assert (sample.indices == 3).mean() == pytest.approx(0.7, abs=0.01)  # stratified sampling
    # importance weights (N P)^-beta normalised by their max: 1 for the rare ones, 1/7 for the frequent one
    assert sample.weights[sample.indices == 0].max() == pytest.approx(1.0, rel=1e-4)
    assert sample.weights[sample.indices == 3].max() == pytest.approx(1 / 7, rel=1e-4)


def test_epsilon_schedule_and_greedy_mix():
    schedule = LinearEpsilon(1.0, 0.1, decay_steps=100)
    assert schedule(0) == 1.0 and schedule(50) == pytest.approx(0.55) and schedule(1000) == pytest.approx(0.1)
    rng = np.random.default_rng(0)
    greedy, random = np.zeros(10_000, dtype=int), np.ones(10_000, dtype=int)
    assert epsilon_greedy(greedy, 0.0, rng, random).sum() == 0
    assert 0.27 < epsilon_greedy(greedy, 0.3, rng, random).mean() < 0.33


def test_weight_average_follows_the_online_weights_fast_at_first_then_at_its_decay():
    online, averaged = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        online.weight.fill_(1.0)
        averaged.weight.fill_(0.0)
    average = WeightAverage(decay=0.99)
    assert average.decay_after(1) == pytest.approx(2 / 11) and average.decay_after(10_000) == 0.99
    average.step(averaged, online, updates_done=1)
    assert averaged.weight.item() == pytest.approx(9 / 11)  # (2/11) * 0 + (9/11) * 1
    average.step(averaged, online, updates_done=10_000)
    assert averaged.weight.item() == pytest.approx(0.99 * 9 / 11 + 0.01)


def test_target_updates_hard_by_env_steps_and_polyak():
    online, target = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        online.weight.fill_(1.0)
        target.weight.fill_(0.0)
    updater = TargetUpdater("hard", interval_env_steps=50, tau=0.0)
    assert not updater.step(target, online, env_step=49) and target.weight.item() == 0.0
    assert updater.step(target, online, env_step=50) and target.weight.item() == 1.0
    with torch.no_grad():
        target.weight.fill_(0.0)
    polyak_update(target, online, tau=0.25)
    assert target.weight.item() == pytest.approx(0.25)
    hard_update(target, online)
    assert target.weight.item() == 1.0


@pytest.mark.parametrize(
    ("num_actions", "slate_size"), [(n, k) for n in (1, 2, 3, 7, 25, 64) for k in (1, 2, 5) if k <= n]
)
def test_random_policy_draws_uniformly_among_the_admissible_actions_only(num_actions, slate_size):
    """Against counting by hand: every drawn action admissible, a slate's items distinct, and each
    admissible action drawn about equally often (the agent's exploration draws the same way)."""
    rng = np.random.default_rng(num_actions * 10 + slate_size)
    mask_BA = rng.random((8, num_actions)) < 0.6
    mask_BA[np.arange(8), rng.integers(0, num_actions, 8)] = True
    mask_BA[:, :slate_size] = True  # a slate always finds enough admissible items
    draws = 4000
    observations = np.repeat(np.arange(8), draws)[:, None]
    policy = RandomPolicy(num_actions, seed=0, slate_size=slate_size, action_mask=lambda obs: mask_BA[obs[:, 0]])
    actions = policy(observations).reshape(8, draws, slate_size)
    for row in range(8):
        admissible = np.flatnonzero(mask_BA[row])
        assert np.isin(actions[row], admissible).all()
        assert all(len(set(slate)) == slate_size for slate in actions[row])
        counts = np.bincount(actions[row].ravel(), minlength=num_actions)[admissible]
        expected = draws * slate_size / len(admissible)
        assert np.abs(counts - expected).max() <= 5 * np.sqrt(expected) + 1
    unmasked = RandomPolicy(num_actions, seed=0, slate_size=slate_size, action_mask=lambda obs: None)
    assert np.array_equal(unmasked(observations[:50]), RandomPolicy(num_actions, 0, slate_size)(observations[:50]))
