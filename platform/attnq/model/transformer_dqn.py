"""The shared Transformer-DQN: tokens -> pre-LN self-attention -> pooled query -> Q-values.

One class serves every domain; nothing domain-specific lives here. The domain's
:class:`~attnq.domain.StateEncoder` produces the tokens. Two torsos are available:

* ``transformer``: pre-LN encoder blocks over the tokens, absent tokens masked out; the output of
  the query token (a learned [CLS] or the encoder's own query token, e.g. the ego vehicle as in
  ego-attention, Leurent & Mercat 2019) is pooled. ``model.queries: k`` learns k [CLS] tokens whose
  outputs the head reads side by side: k reads of the tokens instead of one, as the k seed vectors of
  the Set Transformer's pooling by attention (Lee et al. 2019).
  ``model.shared_layers`` applies one block's weights at every depth (Universal Transformer,
  Dehghani et al. 2019).
* ``mlp``: the flattened tokens through an MLP - the ablation that shows what attention adds.

Two heads: ``dueling`` (Wang et al. 2016; V + A - mean A over a fixed action set) and
``per_token`` (one Q-value per token, for domains whose action is to pick a token: the encoder puts
its ``num_actions`` action tokens first, e.g. the candidate documents of a recommender).
A slate of k items is the k highest Q-values (:func:`greedy_slate`).
Attention weights are computed only when ``return_attention=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnq.config import ModelConfig
from attnq.domain import StateEncoder, Tokens


@dataclass
class QOutput:
    """Q-values and, on request, the attention of each layer (``[B, H, T, T]`` per layer, the
    ``cls_tokens`` learned [CLS] tokens first)."""

    q_values_BA: torch.Tensor
    attention: list[torch.Tensor] | None = None
    token_mask_BT: torch.Tensor | None = None
    cls_tokens: int = 0


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention of ``heads`` heads over batch-first tokens.

    The same computation and parameter names as ``nn.MultiheadAttention`` (so saved networks load
    either way), written out because that module transposes its batch-first inputs to
    sequence-first and back: on a CPU those copies cost about a tenth of a SCAN update. Here the
    heads are views of one projection and the weights are only materialised when asked for.
    """

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout  # ModelConfig has checked that heads divide d_model
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)  # nn.MultiheadAttention's initialisation
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self, queries_BQD: torch.Tensor, keys_BKD: torch.Tensor, key_padding_BK: torch.Tensor, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attended values ``[B, Q, D]`` and, with ``need_weights``, the weights ``[B, H, Q, K]``."""
        batch, num_queries, d_model = queries_BQD.shape
        head_dim = d_model // self.heads
        if queries_BQD is keys_BKD:  # self-attention: one projection
            q_BHQE, k_BHKE, v_BHKE = self._heads(F.linear(queries_BQD, self.in_proj_weight, self.in_proj_bias), 3)
        else:
            w_q, w_kv = self.in_proj_weight.split([d_model, 2 * d_model])
            b_q, b_kv = self.in_proj_bias.split([d_model, 2 * d_model])
            (q_BHQE,) = self._heads(F.linear(queries_BQD, w_q, b_q), 1)
            k_BHKE, v_BHKE = self._heads(F.linear(keys_BKD, w_kv, b_kv), 2)
        attends_B11K = ~key_padding_BK[:, None, None, :]
        dropout = self.dropout if self.training else 0.0
        weights_BHQK = None
        if need_weights:
            scores_BHQK = (q_BHQE @ k_BHKE.transpose(-2, -1)) * head_dim**-0.5
            weights_BHQK = scores_BHQK.masked_fill(~attends_B11K, float("-inf")).softmax(dim=-1)
            attended_BHQE = F.dropout(weights_BHQK, dropout, self.training) @ v_BHKE
        else:
            attended_BHQE = F.scaled_dot_product_attention(q_BHQE, k_BHKE, v_BHKE, attends_B11K, dropout)
        return self.out_proj(attended_BHQE.transpose(1, 2).reshape(batch, num_queries, d_model)), weights_BHQK

    def _heads(self, projected_BTX: torch.Tensor, parts: int) -> torch.Tensor:
        """``[B, T, parts * D]`` as ``parts`` stacked ``[B, H, T, D / H]`` views, one per projection."""
        batch, tokens, width = projected_BTX.shape
        head_dim = width // (parts * self.heads)
        return projected_BTX.view(batch, tokens, parts, self.heads, head_dim).permute(2, 0, 3, 1, 4)


class PreLNBlock(nn.Module):
    """x + MHA(LN(x)); x + FF(LN(x)). Pre-LN keeps training stable without warm-up (Xiong et al. 2020)."""

    def __init__(self, d_model: int, heads: int, feedforward_dim: int, dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, heads, dropout)
        self.feedforward_norm = nn.LayerNorm(d_model)
        self.feedforward = nn.Sequential(
            nn.Linear(d_model, feedforward_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(feedforward_dim, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x_BTD: torch.Tensor,
        padding_BT: torch.Tensor,
        return_attention: bool,
        only: slice | None = None,
        keys_K: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The block's output for every token, or with ``only`` for those tokens alone (``[B, Q, D]``).

        A few tokens' outputs need every token's keys and values but only their own queries,
        attention rows and feed-forward passes, so they cost a fraction of the whole block.
        ``keys_K``, when given, are the indices of the only tokens attended to; the weights then have
        ``K`` columns.
        """
        normed = self.attention_norm(x_BTD)
        keys_BKD, key_padding_BK = (
            (normed, padding_BT) if keys_K is None else (normed[:, keys_K], padding_BT[:, keys_K])
        )
        if only is None:
            residual_BQD, queries_BQD = x_BTD, normed
        else:
            residual_BQD, queries_BQD = x_BTD[:, only], normed[:, only]
        attended, weights_BHQK = self.attention(queries_BQD, keys_BKD, key_padding_BK, return_attention)
        x_BQD = residual_BQD + self.dropout(attended)
        x_BQD = x_BQD + self.dropout(self.feedforward(self.feedforward_norm(x_BQD)))
        return x_BQD, weights_BHQK


class DuelingHead(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a A(s, a), each stream one hidden layer of ``hidden`` units.

    The Q-values of ``detached_actions`` are the same numbers, read from features cut off from the
    torso's gradient: their TD errors train this head alone, so the torso's features are shaped by the
    other actions only (a separate stop decision, which Newman et al. 2020 found keeps +EOS training
    from stratifying a decoder's states by length)."""

    def __init__(
        self, width: int, num_actions: int, hidden: int | None = None, detached_actions: tuple[int, ...] = ()
    ) -> None:
        super().__init__()
        hidden = hidden or width
        self.value = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.advantage = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, num_actions))
        detached_A = torch.zeros(num_actions, dtype=torch.bool)
        detached_A[list(detached_actions)] = True
        # not saved: a setting of the task, so networks saved before it existed load unchanged
        self.register_buffer("detached_A", detached_A, persistent=False)
        self.detaches = bool(detached_actions)

    def forward(self, features_BW: torch.Tensor) -> torch.Tensor:
        q_BA = self._q_values(features_BW)
        if self.detaches and torch.is_grad_enabled():  # acting and targets need no second pass
            q_BA = torch.where(self.detached_A, self._q_values(features_BW.detach()), q_BA)
        return q_BA

    def _q_values(self, features_BW: torch.Tensor) -> torch.Tensor:
        advantage_BA = self.advantage(features_BW)
        return self.value(features_BW) + advantage_BA - advantage_BA.mean(dim=1, keepdim=True)


class TransformerDQN(nn.Module):
    """Q-network over a domain encoder's tokens. See the module docstring."""

    def __init__(self, encoder: StateEncoder, num_actions: int, config: ModelConfig) -> None:
        super().__init__()
        if config.d_model != encoder.d_model:
            raise ValueError(f"encoder width {encoder.d_model} != model.d_model {config.d_model}")
        # The MLP torso has no per-token outputs, so its ablation of a per_token model scores the same
        # actions with the dueling head over the flattened tokens.
        self.head_kind = config.head if config.torso == "transformer" else "dueling"
        if self.head_kind == "per_token" and num_actions > encoder.num_tokens:
            raise ValueError(
                f"model.head=per_token scores tokens, but there are {num_actions} actions and only "
                f"{encoder.num_tokens} tokens"
            )
        self.encoder = encoder
        self.config = config
        self.num_actions = num_actions
        d_model = config.d_model
        uses_cls = config.torso == "transformer" and config.pool == "cls"
        self.cls_tokens = config.queries if uses_cls else 0
        if self.cls_tokens:
            self.cls_token = nn.Parameter(torch.randn(1, self.cls_tokens, d_model) * 0.02)
        if config.torso == "transformer":
            distinct = 1 if config.shared_layers else config.layers
            blocks = [
                PreLNBlock(d_model, config.heads, config.feedforward_dim, config.dropout) for _ in range(distinct)
            ]
            # shared: the list holds the one block `layers` times, so every depth reads and trains the same weights
            self.blocks = nn.ModuleList(blocks * config.layers if config.shared_layers else blocks)
            self.final_norm = nn.LayerNorm(d_model)
            width = d_model * max(self.cls_tokens, 1)
        else:
            layers: list[nn.Module] = []
            width = encoder.num_tokens * d_model
            for hidden in config.mlp_hidden:
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                width = hidden
            self.mlp = nn.Sequential(*layers)
        if any(a >= num_actions for a in config.detached_actions):
            raise ValueError(
                f"model.detached_actions {list(config.detached_actions)} name actions past the {num_actions} there are"
            )
        if self.head_kind == "dueling":
            self.head: nn.Module = DuelingHead(width, num_actions, config.head_hidden, config.detached_actions)
        else:
            self.head = nn.Linear(width, 1)

    def forward(self, observations_BX: torch.Tensor, return_attention: bool = False) -> QOutput:
        tokens = self.encoder(observations_BX)
        if self.config.torso == "mlp":
            present_BTD = tokens.embeddings_BTD * tokens.mask_BT.unsqueeze(-1)
            return QOutput(self.head(self.mlp(present_BTD.flatten(1))), token_mask_BT=tokens.mask_BT)
        return self._attend(tokens, return_attention)

    def _attend(self, tokens: Tokens, return_attention: bool) -> QOutput:
        x_BTD, mask_BT = tokens.embeddings_BTD, tokens.mask_BT
        queries = range(tokens.query_index, tokens.query_index + 1)
        if self.cls_tokens:
            batch = x_BTD.shape[0]
            x_BTD = torch.cat([self.cls_token.expand(batch, -1, -1), x_BTD], dim=1)
            mask_BT = torch.cat([mask_BT.new_ones(batch, self.cls_tokens), mask_BT], dim=1)
            queries = range(self.cls_tokens)
        padding_BT = ~mask_BT
        keys_K = context_keys(tokens, queries, self.cls_tokens, x_BTD.device)
        # Each head reads some tokens of the last block: the pooled queries, or a per-token head's
        # action tokens. Unless the full attention maps are asked for, the last block computes those
        # tokens' outputs alone: the same Q-values, and for the 1-block sepsis network about a third
        # of the time per update (docs/experiments/2026-12-01-sepsis.md).
        if self.head_kind == "per_token":
            read = range(self.cls_tokens, self.cls_tokens + self.num_actions)
        else:
            read = queries
        alone = not return_attention
        # Grouping rows by length changes shapes batch to batch, which a compiled graph cannot follow.
        if alone and self.head_kind == "dueling" and keys_K is None and not torch.compiler.is_compiling():
            x_BQD = self._pooled_by_length(x_BTD, padding_BT, queries)
            return QOutput(self.head(self.final_norm(x_BQD).flatten(1)), None, tokens.mask_BT, self.cls_tokens)
        x_BTD, attention = self._through_blocks(x_BTD, padding_BT, return_attention, read if alone else None, keys_K)
        if alone:
            read = range(len(read))  # the last block returned the tokens read alone
        x_BRD = self.final_norm(x_BTD[:, read.start : read.stop])
        if self.head_kind == "per_token":
            q_BA, present_BA = self.head(x_BRD).squeeze(-1), tokens.mask_BT[:, : self.num_actions]
            q_values = q_BA.masked_fill(~present_BA, torch.finfo(q_BA.dtype).min)
        else:
            q_values = self.head(x_BRD.flatten(1))
        return QOutput(q_values, attention if return_attention else None, tokens.mask_BT, self.cls_tokens)

    def _through_blocks(
        self,
        x_BTD: torch.Tensor,
        padding_BT: torch.Tensor,
        return_attention: bool,
        read: range | None,
        keys_K: torch.Tensor | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Every block's pass, and the attention weights when asked for. With ``read`` the last block
        computes those tokens' outputs alone (``[B, Q, D]``)."""
        attention: list[torch.Tensor] = []
        last = len(self.blocks) - 1
        for depth, block in enumerate(self.blocks):
            only = slice(read.start, read.stop) if read is not None and depth == last else None
            num_tokens = x_BTD.shape[1]
            x_BTD, weights = block(x_BTD, padding_BT, return_attention, only, keys_K)
            if weights is not None and keys_K is not None:  # back to one column per token, 0 off the context
                weights = weights.new_zeros(*weights.shape[:-1], num_tokens).index_copy_(-1, keys_K, weights)
            if weights is not None:
                attention.append(weights)
        return x_BTD, attention

    def _pooled_by_length(self, x_BTD: torch.Tensor, padding_BT: torch.Tensor, queries: range) -> torch.Tensor:
        """The query tokens' outputs ``[B, Q, D]``, each group of ``model.length_buckets`` rows (sorted
        by their last present token) cut after its own last present token: rows never attend to one
        another, so this changes no Q-value, and where lengths vary (sentences) far fewer padded
        tokens go through the blocks."""
        groups = min(self.config.length_buckets, x_BTD.shape[0])
        if groups == 1:
            return self._through_blocks(
                *without_trailing_padding(x_BTD, padding_BT, queries.stop - 1), False, queries, None
            )[0]
        order_B = row_lengths(padding_BT).argsort()
        pooled_BQD = [
            self._through_blocks(
                *without_trailing_padding(x_BTD[rows], padding_BT[rows], queries.stop - 1), False, queries, None
            )[0]
            for rows in order_B.tensor_split(groups)
        ]
        return torch.cat(pooled_BQD)[order_B.argsort()]


def without_trailing_padding(
    x_BTD: torch.Tensor, padding_BT: torch.Tensor, last_query: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens up to the last one present in any row (and the last query). Absent tokens get no
    attention, so a pooled query's output is the same, and a batch of short sentences or few
    vehicles attends over fewer tokens."""
    length = max(int(row_lengths(padding_BT).max()), last_query + 1)
    return x_BTD[:, :length], padding_BT[:, :length]


def row_lengths(padding_BT: torch.Tensor) -> torch.Tensor:
    """Each row's tokens up to and including its last present one ``[B]`` (0 for a row of padding)."""
    positions_T = torch.arange(1, padding_BT.shape[1] + 1, device=padding_BT.device)
    return torch.where(padding_BT, 0, positions_T).amax(dim=1)


def context_keys(tokens: Tokens, queries: range, offset: int, device: torch.device) -> torch.Tensor | None:
    """Indices of the tokens attended to when the encoder names a context: the context (shifted by
    ``offset`` when [CLS] tokens come first) and the pooled queries, so that no row is left with
    nothing to attend to when its whole context is absent. None: every token."""
    if tokens.context is None:
        return None
    context = range(tokens.embeddings_BTD.shape[1])[tokens.context]
    return torch.tensor(sorted({*queries, *(offset + i for i in context)}), device=device)


def masked_argmax(q_values_BA: torch.Tensor, action_mask_BA: torch.Tensor | None) -> torch.Tensor:
    """Greedy actions, never choosing an inadmissible one."""
    if action_mask_BA is not None:
        q_values_BA = q_values_BA.masked_fill(~action_mask_BA, torch.finfo(q_values_BA.dtype).min)
    return q_values_BA.argmax(dim=1)


def greedy_slate(q_values_BA: torch.Tensor, action_mask_BA: torch.Tensor | None, slate_size: int) -> torch.Tensor:
    """Greedy actions ``[B]``, or for slates the ``slate_size`` best distinct items ``[B, k]``.

    A slate's value is decomposed over its items (SlateQ, Ie et al. 2019), so the best slate is the
    set of the k best items, highest first.
    """
    if slate_size == 1:
        return masked_argmax(q_values_BA, action_mask_BA)
    if action_mask_BA is not None:
        q_values_BA = q_values_BA.masked_fill(~action_mask_BA, torch.finfo(q_values_BA.dtype).min)
    return q_values_BA.topk(slate_size, dim=1).indices
