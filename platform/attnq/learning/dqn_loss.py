"""The DQN loss with a Double-DQN target (van Hasselt et al. 2016) and the Huber loss.

    td_target = r + discount * Q_target(s', argmax_a Q_online(s', a))      (double)
    td_target = r + discount * max_a Q_target(s', a)                       (vanilla)

``discount`` already holds gamma**n for n-step returns and 0 at terminal states.

Slates (actions ``[B, k]``): a slate's value is decomposed over its items as in SlateQ (Ie et al.
2019), Q(s, A) = sum_i P(i | s, A) Q(s, i), with the user's choice probabilities P taken as uniform
(the agent does not observe the choice model): Q(s, A) = mean of its items' Q-values, and the
best next slate is the k best items. With k = 1 every formula above is unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from attnq.model.transformer_dqn import greedy_slate


class DQNLoss(NamedTuple):
    loss: torch.Tensor
    td_errors: torch.Tensor
    q_taken: torch.Tensor
    td_target: torch.Tensor


def td_target(
    rewards_B: torch.Tensor,
    discounts_B: torch.Tensor,
    next_q_target_BA: torch.Tensor,
    next_q_online_BA: torch.Tensor | None,
    next_action_mask_BA: torch.Tensor | None = None,
    slate_size: int = 1,
) -> torch.Tensor:
    """Bootstrapped target. Pass ``next_q_online_BA`` for Double DQN, None for the vanilla max."""
    selector_BA = next_q_online_BA if next_q_online_BA is not None else next_q_target_BA
    next_actions = greedy_slate(selector_BA, next_action_mask_BA, slate_size)
    return rewards_B + discounts_B * slate_value(next_q_target_BA, next_actions)


def slate_value(q_values_BA: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q(s, a) for actions ``[B]``; the mean item value for slates ``[B, k]`` (see the module docstring)."""
    actions_BK = actions.unsqueeze(1) if actions.dim() == 1 else actions
    return q_values_BA.gather(1, actions_BK).mean(dim=1)


def dqn_loss(
    q_values_BA: torch.Tensor,
    actions_B: torch.Tensor,
    td_target_B: torch.Tensor,
    weights_B: torch.Tensor,
    huber_delta: float,
) -> DQNLoss:
    """Importance-weighted Huber loss between Q(s, a) and the (detached) target."""
    q_taken_B = slate_value(q_values_BA, actions_B)
    target_B = td_target_B.detach()
    per_sample = F.huber_loss(q_taken_B, target_B, reduction="none", delta=huber_delta)
    return DQNLoss((weights_B * per_sample).mean(), (target_B - q_taken_B).detach(), q_taken_B, target_B)
