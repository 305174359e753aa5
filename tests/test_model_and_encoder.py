"""The highway encoder on real highway-env observations, and the shared Transformer-DQN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnq.config import ModelConfig, load_task
from attnq.runtime import prepare_task
from conftest import TASKS


@pytest.fixture(scope="module")
def highway_runtime():
    return prepare_task(load_task(TASKS / "highway-fast.yaml", ["model.d_model=32", "model.heads=2"]))


@pytest.fixture(scope="module")
def highway_observations(highway_runtime):
    env = highway_runtime.make_env()
    observations = [env.reset(seed=s)[0] for s in range(4)]
    env.close()
    return np.stack(observations).astype(np.float32)


def test_encoder_emits_one_token_per_vehicle_with_presence_mask(highway_runtime, highway_observations):
    encoder = highway_runtime.build_q_network().encoder
    observations = highway_observations.copy()
    observations[0, 5:, :] = 0.0  # vehicles 5.. absent, as highway-env reports them
    tokens = encoder(torch.as_tensor(observations))
    assert tokens.embeddings_BTD.shape == (4, 8, 32)
    assert tokens.mask_BT[0].tolist() == [True] * 5 + [False] * 3
    assert tokens.mask_BT[:, 0].all() and tokens.query_index == 0


def test_encoder_labels_read_as_vehicles(highway_runtime, highway_observations):
    encoder = highway_runtime.build_q_network().encoder
    labels = encoder.token_labels(highway_observations[0])
    assert len(labels) == 8 and labels[0].startswith("ego: ")
    assert all(label.startswith(("car ", "slot ")) for label in labels[1:])
    car = next(label for label in labels[1:] if label.startswith("car"))
    assert " m, lane " in car


@pytest.mark.parametrize(
    "task, absolute, lanes",
    [
        ("highway-fast", "false", True),
        ("intersection", "true", False),
        ("intersection", "false", False),
    ],
)
def test_lanes_in_labels_follow_the_action_space_not_the_coordinate_frame(task, absolute, lanes):
    runtime = prepare_task(load_task(TASKS / f"{task}.yaml", [f"env.kwargs.config.observation.absolute={absolute}"]))
    env = runtime.make_env()
    observation = env.reset(seed=0)[0]
    env.close()
    encoder = runtime.build_q_network().encoder
    assert encoder.layout.lane_changes is lanes and encoder.layout.absolute is (absolute == "true")
    cars = [label for label in encoder.token_labels(observation)[1:] if label.startswith("car")]
    assert cars and all((", lane " in label) is lanes for label in cars)


def test_encoder_names_the_shape_it_expected(highway_runtime):
    encoder = highway_runtime.build_q_network().encoder
    with pytest.raises(ValueError, match=r"expected Kinematics observations \[B, 8, 5\], got \[2, 8, 7\]"):
        encoder(torch.zeros(2, 8, 7))


def test_absent_tokens_get_no_attention_and_do_not_change_q_values(highway_runtime, highway_observations):
    network = highway_runtime.build_q_network().eval()
    observations = torch.as_tensor(highway_observations[:1].copy())
    observations[0, 6:, :] = 0.0
    output = network(observations, return_attention=True)
    assert output.attention is not None and len(output.attention) == network.config.layers
    for weights_BHTT in output.attention:
        assert torch.all(weights_BHTT[..., 6:] == 0)
        assert torch.allclose(weights_BHTT.sum(-1), torch.ones(1))
    garbage = observations.clone()
    garbage[0, 6:, 1:] = 123.0  # features of absent vehicles must not matter (presence stays 0)
    assert torch.allclose(network(garbage).q_values_BA, output.q_values_BA, atol=1e-5)


def test_attention_is_only_computed_when_asked(highway_runtime, highway_observations):
    network = highway_runtime.build_q_network()
    output = network(torch.as_tensor(highway_observations))
    assert output.attention is None and output.q_values_BA.shape == (4, 5)


@pytest.mark.parametrize(
    "pool, layers, queries", [("query_token", 2, 1), ("cls", 1, 1), ("cls", 2, 1), ("cls", 1, 3), ("cls", 2, 3)]
)
def test_pooled_head_computes_only_the_query_tokens_in_the_last_block_with_the_same_q_values(
    highway_runtime, highway_observations, pool, layers, queries
):
    from attnq.model.transformer_dqn import TransformerDQN

    base = highway_runtime.task.model.model_dump()
    config = ModelConfig(**{**base, "pool": pool, "layers": layers, "queries": queries})
    network = TransformerDQN(highway_runtime.build_q_network().encoder, 5, config).eval()
    observations = torch.as_tensor(highway_observations.copy())
    observations[1, 4:, :] = 0.0  # absent vehicles stay masked as keys
    block_outputs: list[tuple[int, ...]] = []
    network.blocks[-1].register_forward_hook(
        lambda module, inputs, output: block_outputs.append(tuple(output[0].shape))
    )
    pooled = network(observations).q_values_BA
    every_token = network(observations, return_attention=True).q_values_BA  # maps asked for: every token's output
    tokens = 8 + (pool == "cls") * queries
    assert block_outputs == [(4, queries, 32), (4, tokens, 32)]
    assert torch.allclose(pooled, every_token, atol=1e-6)


def test_cls_pooling_mlp_ablation_and_per_token_head(highway_runtime, highway_observations):
    from attnq.model.transformer_dqn import DuelingHead, TransformerDQN

    observations = torch.as_tensor(highway_observations)
    base = highway_runtime.task.model.model_dump()
    encoder = highway_runtime.build_q_network().encoder
    cls = TransformerDQN(encoder, 5, ModelConfig(**{**base, "pool": "cls"}))
    output = cls(observations, return_attention=True)
    assert output.cls_tokens == 1 and output.attention[0].shape == (4, 2, 9, 9)
    mlp = TransformerDQN(encoder, 5, ModelConfig(**{**base, "torso": "mlp", "mlp_hidden": (16,)}))
    assert mlp(observations).q_values_BA.shape == (4, 5)
    assert not hasattr(mlp, "blocks")
    per_token = TransformerDQN(encoder, 8, ModelConfig(**{**base, "head": "per_token"}))
    masked = observations.clone()
    masked[:, 7, :] = 0.0
    q_BT = per_token(masked).q_values_BA
    assert q_BT.shape == (4, 8) and torch.all(q_BT[:, 7] == torch.finfo(q_BT.dtype).min)
    # only the first num_actions tokens are actions
    assert TransformerDQN(encoder, 3, ModelConfig(**{**base, "head": "per_token"}))(masked).q_values_BA.shape == (4, 3)
    with pytest.raises(ValueError, match="8 tokens"):
        TransformerDQN(encoder, 9, ModelConfig(**{**base, "head": "per_token"}))
    # the MLP ablation of a per-token model scores the same actions through the dueling head
    ablation = TransformerDQN(
        encoder, 8, ModelConfig(**{**base, "head": "per_token", "torso": "mlp", "mlp_hidden": (16,)})
    )
    assert isinstance(ablation.head, DuelingHead) and ablation(masked).q_values_BA.shape == (4, 8)


def test_dueling_head_hidden_width_defaults_to_the_torso_width_and_is_configurable(highway_runtime):
    from attnq.model.transformer_dqn import DuelingHead, TransformerDQN

    assert DuelingHead(width=8, num_actions=3).advantage[0].out_features == 8
    encoder = highway_runtime.build_q_network().encoder
    base = highway_runtime.task.model.model_dump()
    wide = TransformerDQN(encoder, 5, ModelConfig(**{**base, "head_hidden": 48}))
    assert wide.head.value[0].out_features == wide.head.advantage[0].out_features == 48
    assert wide.head.advantage[0].in_features == base["d_model"]
    with pytest.raises(ValueError, match="head_hidden"):
        ModelConfig(**{**base, "head_hidden": 0})


def test_several_queries_are_cls_tokens_read_side_by_side_by_the_dueling_head(highway_runtime):
    from attnq.model.transformer_dqn import TransformerDQN

    base = highway_runtime.task.model.model_dump()
    network = TransformerDQN(
        highway_runtime.build_q_network().encoder, 5, ModelConfig(**{**base, "pool": "cls", "queries": 4})
    )
    assert network.cls_token.shape == (1, 4, 32) and network.head.advantage[0].in_features == 4 * 32
    for wrong in ({"pool": "query_token"}, {"pool": "cls", "head": "per_token"}):
        with pytest.raises(ValueError, match=r"queries \(2\) above 1 .* set pool: cls and head: dueling"):
            ModelConfig(**{**base, **wrong, "queries": 2})


@pytest.mark.parametrize("torso", ["transformer", "mlp"])
@pytest.mark.parametrize("detached", [(0,), (1, 3), (0, 1, 2, 3, 4)])
def test_detached_actions_keep_their_q_values_and_train_the_head_but_not_the_torso(
    highway_runtime, highway_observations, torso, detached
):
    from attnq.model.transformer_dqn import TransformerDQN

    base = {**highway_runtime.task.model.model_dump(), "torso": torso, "mlp_hidden": (16,)}
    encoder = highway_runtime.build_q_network().encoder
    torch.manual_seed(0)
    plain = TransformerDQN(encoder, 5, ModelConfig(**base))
    split = TransformerDQN(encoder, 5, ModelConfig(**{**base, "detached_actions": detached}))
    split.load_state_dict(plain.state_dict())  # the setting is no saved state: the same weights load
    observations = torch.as_tensor(highway_observations)
    torch.testing.assert_close(split(observations).q_values_BA, plain(observations).q_values_BA)
    head = {n for n, _ in split.named_parameters() if n.startswith("head.")}
    torso_names = {n for n, p in split.named_parameters() if n not in head and p.requires_grad}
    for action in range(5):
        split.zero_grad()
        split(observations).q_values_BA[:, action].sum().backward()
        moved = {n for n, p in split.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        assert moved & head, "the head always learns"
        # the encoder's shared parameters (e.g. segment embeddings) count as torso too
        assert bool(moved & torso_names) == (action not in detached), (action, sorted(moved & torso_names)[:3])


def test_detached_actions_must_be_actions_of_a_dueling_head(highway_runtime):
    from attnq.errors import TaskFileError
    from attnq.model.transformer_dqn import TransformerDQN

    base = highway_runtime.task.model.model_dump()
    with pytest.raises(ValueError, match=r"detached_actions \(\[0\]\) are read by the dueling head"):
        ModelConfig(**{**base, "head": "per_token", "detached_actions": (0,)})
    for wrong in [(-1,), (2, 2)]:
        with pytest.raises(ValueError, match="distinct action numbers >= 0"):
            ModelConfig(**{**base, "detached_actions": wrong})
    with pytest.raises(ValueError, match=r"\[5\] name actions past the 5"):
        TransformerDQN(highway_runtime.build_q_network().encoder, 5, ModelConfig(**{**base, "detached_actions": (5,)}))
    with pytest.raises(TaskFileError, match=r"'model.detached_actions' = \[7\] .* \(0 to 4\); fix"):
        prepare_task(load_task(TASKS / "highway-fast.yaml", ["model.detached_actions=[7]"]))


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_shared_layers_apply_one_block_at_every_depth(highway_runtime, highway_observations, layers):
    from attnq.model.transformer_dqn import TransformerDQN

    base = highway_runtime.task.model.model_dump()
    encoder = highway_runtime.build_q_network().encoder
    shared = TransformerDQN(encoder, 5, ModelConfig(**{**base, "layers": layers, "shared_layers": True}))
    single = TransformerDQN(encoder, 5, ModelConfig(**{**base, "layers": 1}))
    count = lambda network: sum(p.numel() for p in network.parameters())  # noqa: E731
    assert count(shared) == count(single) and len(shared.blocks) == layers
    # brute force: an unshared stack whose every block holds the shared block's weights
    stacked = TransformerDQN(encoder, 5, ModelConfig(**{**base, "layers": layers}))
    stacked.load_state_dict(shared.state_dict())
    for block in stacked.blocks:
        block.load_state_dict(shared.blocks[0].state_dict())
    observations = torch.as_tensor(highway_observations)
    output = shared(observations, return_attention=True)
    torch.testing.assert_close(output.q_values_BA, stacked(observations).q_values_BA)
    assert len(output.attention) == layers
    # a saved shared network loads back shared, and as saved
    reloaded = TransformerDQN(encoder, 5, ModelConfig(**{**base, "layers": layers, "shared_layers": True}))
    reloaded.load_state_dict(shared.state_dict())
    assert all(block is reloaded.blocks[0] for block in reloaded.blocks)
    torch.testing.assert_close(reloaded(observations).q_values_BA, output.q_values_BA)


def test_model_width_comes_from_the_config_and_must_match_the_encoder(highway_runtime):
    from attnq.model.transformer_dqn import TransformerDQN

    encoder = highway_runtime.build_q_network().encoder
    with pytest.raises(ValueError, match="encoder width 32 != model.d_model 64"):
        TransformerDQN(encoder, 5, ModelConfig(d_model=64))


@pytest.mark.parametrize("pool, queries", [("query_token", 1), ("cls", 1), ("cls", 3)])
def test_tokens_after_the_last_present_one_are_dropped_with_the_same_q_values(
    highway_runtime, highway_observations, pool, queries
):
    """Against the full computation (the attention-map path keeps every token), for every number
    of vehicles present in the batch's fullest row: the blocks see only up to that one."""
    from attnq.model.transformer_dqn import TransformerDQN

    base = highway_runtime.task.model.model_dump()
    config = ModelConfig(**{**base, "pool": pool, "queries": queries})
    network = TransformerDQN(highway_runtime.build_q_network().encoder, 5, config).eval()
    seen: list[int] = []
    network.blocks[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[1]))
    rng = np.random.default_rng(0)
    for fullest in range(1, 9):
        observations = torch.as_tensor(highway_observations.copy())
        observations[:, fullest:, :] = 0.0
        for row in range(len(observations)):  # other rows hold fewer vehicles, some none but ego
            observations[row, int(rng.integers(1, fullest + 1)) :, :] = 0.0
        observations[int(rng.integers(len(observations))), :fullest, 0] = 1.0  # one row is the fullest
        seen.clear()
        pooled = network(observations).q_values_BA
        every_token = network(observations, return_attention=True).q_values_BA
        cls_tokens = (pool == "cls") * queries
        assert seen == [fullest + cls_tokens, 8 + cls_tokens]
        assert torch.allclose(pooled, every_token, atol=1e-6)


@pytest.mark.parametrize("pool, queries", [("query_token", 1), ("cls", 1), ("cls", 3)])
def test_rows_grouped_by_length_give_the_same_q_values_and_shorter_groups(
    highway_runtime, highway_observations, pool, queries
):
    """``model.length_buckets``: against the full computation, over batches of 1-12 rows with
    vehicles absent anywhere, for 1-5 groups: the same Q-values and gradients, each group cut after
    its own longest row."""
    from attnq.model.transformer_dqn import TransformerDQN

    base = highway_runtime.task.model.model_dump()
    rng = np.random.default_rng(1)
    cls_tokens = (pool == "cls") * queries
    for case in range(30):
        groups, batch = int(rng.integers(1, 6)), int(rng.integers(1, 13))
        config = ModelConfig(**{**base, "pool": pool, "queries": queries, "length_buckets": groups})
        torch.manual_seed(case)
        network = TransformerDQN(highway_runtime.build_q_network().encoder, 5, config).eval()
        observations = torch.as_tensor(highway_observations[rng.integers(0, 4, batch)].copy())
        observations[:, 1:, 0] = torch.as_tensor(rng.random((batch, 7)) < rng.random())  # ego always present
        seen: list[int] = []
        network.blocks[0].register_forward_hook(
            lambda module, inputs, output, seen=seen: seen.append(inputs[0].shape[1])
        )
        pooled = network(observations).q_values_BA
        every_token = network(observations, return_attention=True).q_values_BA
        assert torch.allclose(pooled, every_token, atol=1e-5), case
        grads = torch.autograd.grad(pooled.square().sum(), list(network.blocks.parameters()))
        expected = torch.autograd.grad(every_token.square().sum(), list(network.blocks.parameters()))
        assert all(torch.allclose(g, e, atol=1e-4) for g, e in zip(grads, expected, strict=True)), case
        present_B = observations[:, :, 0] > 0.5
        lengths = sorted(int(row.nonzero().max()) + 1 for row in present_B)
        expected_groups = [max(group) + cls_tokens for group in np.array_split(lengths, min(groups, batch))]
        assert seen[:-1] == expected_groups and seen[-1] == 8 + cls_tokens, case


class ContextEncoder(torch.nn.Module):
    """The highway encoder's tokens with a context named: the tokens attended to."""

    def __init__(self, encoder, context: slice) -> None:
        super().__init__()
        self.inner, self.context = encoder, context
        self.num_tokens, self.d_model = encoder.num_tokens, encoder.d_model

    def forward(self, observations_BX):
        from attnq.domain import Tokens

        tokens = self.inner(observations_BX)
        return Tokens(tokens.embeddings_BTD, tokens.mask_BT, tokens.query_index, context=self.context)


def attention_masked_by_hand(network, observations_BX, keys: list[int]):
    """Brute force: every token through full attention, the columns off ``keys`` forbidden by an
    attention mask. Returns (Q-values, last layer's weights [B, H, T, T])."""
    tokens = network.encoder(observations_BX)
    x_BTD, mask_BT = tokens.embeddings_BTD, tokens.mask_BT
    offset = network.cls_tokens
    if offset:
        x_BTD = torch.cat([network.cls_token.expand(len(x_BTD), -1, -1), x_BTD], dim=1)
        mask_BT = torch.cat([mask_BT.new_ones(len(x_BTD), offset), mask_BT], dim=1)
    forbidden_TT = torch.ones(x_BTD.shape[1], x_BTD.shape[1], dtype=torch.bool)
    forbidden_TT[:, keys] = False
    for block in network.blocks:
        normed = block.attention_norm(x_BTD)
        reference = torch.nn.MultiheadAttention(network.config.d_model, network.config.heads, batch_first=True)
        reference.load_state_dict(block.attention.state_dict())  # torch's own attention, the same weights
        attended, weights = reference(
            normed, normed, normed, key_padding_mask=~mask_BT, attn_mask=forbidden_TT, average_attn_weights=False
        )
        x_BTD = x_BTD + attended
        x_BTD = x_BTD + block.feedforward(block.feedforward_norm(x_BTD))
    x_BTD = network.final_norm(x_BTD)
    if network.head_kind == "per_token":
        q_BA = network.head(x_BTD).squeeze(-1)[:, offset : offset + network.num_actions]
        q_BA = q_BA.masked_fill(~tokens.mask_BT[:, : network.num_actions], torch.finfo(q_BA.dtype).min)
    else:
        queries = range(offset) if offset else [tokens.query_index]
        q_BA = network.head(torch.cat([x_BTD[:, q] for q in queries], dim=1))
    return q_BA, weights


@pytest.mark.parametrize(
    "pool, head, queries",
    [("query_token", "dueling", 1), ("cls", "dueling", 1), ("cls", "per_token", 1), ("cls", "dueling", 3)],
)
def test_a_named_context_is_the_only_tokens_attended_to_as_an_attention_mask_would_make_it(
    highway_runtime, highway_observations, pool, head, queries
):
    """Against full attention with the other columns masked, for every context of the 8 tokens:
    the same Q-values, and the weights (one column per token) zero off the context and the query."""
    from attnq.model.transformer_dqn import TransformerDQN

    base = highway_runtime.task.model.model_dump()
    encoder = highway_runtime.build_q_network().encoder
    observations = torch.as_tensor(highway_observations.copy())
    observations[1, 3:, :] = 0.0  # a row whose context is partly or wholly absent
    offset = (pool == "cls") * queries
    config = ModelConfig(**{**base, "pool": pool, "head": head, "layers": 2, "queries": queries})
    for start in range(8):
        for stop in range(start + 1, 9):
            context = slice(start, stop)
            network = TransformerDQN(ContextEncoder(encoder, context), 5, config).eval()
            keys = sorted({*range(max(offset, 1)), *(offset + i for i in range(start, stop))})
            expected_q, expected_weights = attention_masked_by_hand(network, observations, keys)
            output = network(observations, return_attention=True)
            assert torch.allclose(network(observations).q_values_BA, expected_q, atol=1e-5), context
            assert torch.allclose(output.q_values_BA, expected_q, atol=1e-5), context
            assert torch.allclose(output.attention[-1], expected_weights, atol=1e-6), context
            off_keys = [t for t in range(8 + offset) if t not in keys]
            assert torch.all(output.attention[-1][..., off_keys] == 0.0)


@pytest.mark.parametrize(
    "pool, layers, context",
    [
        ("cls", 1, None),
        ("cls", 2, None),
        ("query_token", 2, None),
        ("cls", 2, slice(3, 8)),
        ("query_token", 1, slice(0, 2)),
    ],
)
def test_per_token_head_computes_only_the_action_tokens_in_the_last_block(
    highway_runtime, highway_observations, pool, layers, context
):
    """For every number of action tokens: the last block's output holds the action tokens alone, and
    the Q-values equal every token's pass through full attention (masked off the context)."""
    from attnq.model.transformer_dqn import TransformerDQN

    base = highway_runtime.task.model.model_dump()
    encoder = highway_runtime.build_q_network().encoder
    if context is not None:
        encoder = ContextEncoder(encoder, context)
    observations = torch.as_tensor(highway_observations.copy())
    observations[1, 4:, :] = 0.0  # absent actions score the lowest value, absent keys get no attention
    config = ModelConfig(**{**base, "pool": pool, "head": "per_token", "layers": layers})
    offset = int(pool == "cls")
    block_outputs: list[tuple[int, ...]] = []
    for num_actions in range(1, 9):
        network = TransformerDQN(encoder, num_actions, config).eval()
        network.blocks[-1].register_forward_hook(lambda module, inputs, output: block_outputs.append(output[0].shape))
        keys = list(range(8 + offset))
        if context is not None:
            keys = sorted({*range(max(offset, 1)), *(offset + i for i in range(8)[context])})
        expected_q, _ = attention_masked_by_hand(network, observations, keys)
        q_BA = network(observations).q_values_BA
        assert block_outputs.pop() == (4, num_actions, 32) and not block_outputs
        assert torch.allclose(q_BA, expected_q, atol=1e-5), num_actions
        assert torch.allclose(network(observations, return_attention=True).q_values_BA, expected_q, atol=1e-5)
        assert block_outputs.pop() == (4, 8 + offset, 32)  # the maps asked for: every token's output


@pytest.mark.parametrize("case", range(48))
def test_attention_equals_torch_multihead_attention_with_its_saved_weights(case):
    """Against ``nn.MultiheadAttention`` loaded from the same state dict (so networks saved with
    it still load), over random sizes: self-attention and a few queries over all keys, padded keys,
    with and without the weights; outputs, weights and gradients agree."""
    from torch import nn

    from attnq.model.transformer_dqn import MultiHeadAttention

    generator = torch.Generator().manual_seed(case)

    def draw(high: int) -> int:
        return int(torch.randint(1, high + 1, (1,), generator=generator))

    heads, head_dim, batch, tokens = draw(4), draw(8), draw(6), draw(12)
    d_model = heads * head_dim
    reference = nn.MultiheadAttention(d_model, heads, batch_first=True)
    attention = MultiHeadAttention(d_model, heads, dropout=0.0)
    attention.load_state_dict(reference.state_dict())  # strict: the parameter names are the same
    keys = torch.randn(batch, tokens, d_model, generator=generator, requires_grad=True)
    padding = torch.rand(batch, tokens, generator=generator) < 0.4
    padding[torch.arange(batch), torch.randint(0, tokens, (batch,), generator=generator)] = False  # a key per row
    first = int(torch.randint(0, tokens, (1,), generator=generator))
    for queries in (keys, keys[:, first : first + draw(tokens)]):
        for need_weights in (False, True):
            expected, expected_weights = reference(
                queries, keys, keys, key_padding_mask=padding, need_weights=need_weights, average_attn_weights=False
            )
            attended, weights = attention(queries, keys, padding, need_weights)
            assert torch.allclose(attended, expected, atol=1e-5)
            assert (weights is None) is (expected_weights is None)
            if weights is not None:
                assert torch.allclose(weights, expected_weights, atol=1e-6)
                assert torch.all(weights.masked_select(padding[:, None, None, :]) == 0)
            grads = torch.autograd.grad(attended.square().sum(), [keys, attention.in_proj_weight])
            expected_grads = torch.autograd.grad(expected.square().sum(), [keys, reference.in_proj_weight])
            for grad, expected_grad in zip(grads, expected_grads, strict=True):
                assert torch.allclose(grad, expected_grad, atol=1e-4)


# A changed value for each field that one torso alone declares it reads (attnq.config.torso_of).
ONE_TORSO_CHANGES = {
    "model.layers": {"layers": 3},
    "model.shared_layers": {"shared_layers": True},
    "model.heads": {"heads": 4},
    "model.feedforward_dim": {"feedforward_dim": 16},
    "model.dropout": {"dropout": 0.5},
    "model.pool": {"pool": "cls"},
    "model.queries": {"pool": "cls", "queries": 3},
    "model.mlp_hidden": {"mlp_hidden": (8, 8, 8)},
}


@pytest.mark.parametrize("path", sorted(ONE_TORSO_CHANGES))
def test_a_field_one_torso_reads_leaves_the_other_torsos_network_as_it_was(highway_runtime, highway_observations, path):
    """What lets a saved run of the other torso stand when the field changes (reuse.refusal)."""
    from attnq.config import leaf_fields, torso_of
    from attnq.model.transformer_dqn import TransformerDQN

    assert set(ONE_TORSO_CHANGES) == {p for p in leaf_fields() if torso_of(p)}, "a declared field lacks a change"
    other = {"transformer": "mlp", "mlp": "transformer"}[torso_of(path)]
    base = {**highway_runtime.task.model.model_dump(), "torso": other}
    encoder = highway_runtime.build_q_network().encoder
    observations = torch.as_tensor(highway_observations)

    def network_and_q_values(config: dict) -> tuple[dict, torch.Tensor]:
        torch.manual_seed(0)
        network = TransformerDQN(encoder, 5, ModelConfig(**config)).train()  # train mode: dropout would act
        torch.manual_seed(1)
        return network.state_dict(), network(observations).q_values_BA

    weights, q_values = network_and_q_values(base)
    changed_weights, changed_q_values = network_and_q_values({**base, **ONE_TORSO_CHANGES[path]})
    assert weights.keys() == changed_weights.keys()
    assert all(torch.equal(weights[k], changed_weights[k]) for k in weights)
    assert torch.equal(q_values, changed_q_values)
    # the torso that reads it does change: the field is not simply read by neither
    own = {**base, "torso": torso_of(path)}
    own_weights, own_q_values = network_and_q_values(own)
    changed_own_weights, changed_own_q_values = network_and_q_values({**own, **ONE_TORSO_CHANGES[path]})
    assert own_weights.keys() != changed_own_weights.keys() or not torch.equal(own_q_values, changed_own_q_values)
