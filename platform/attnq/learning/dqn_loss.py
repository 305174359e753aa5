"""The DQN loss with a Double-DQN target (van Hasselt et al. 2016) and the Huber loss.

    td_target = r + discount * Q_target(s', argmax_a Q_online(s', a))      (double)
    td_target = r + discount * max_a Q_target(s', a)                       (vanilla)

``discount`` already holds gamma**n for n-step returns and 0 at terminal states.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from attnq.model.transformer_dqn import masked_argmax


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
) -> torch.Tensor:
    """Bootstrapped target. Pass ``next_q_online_BA`` for Double DQN, None for the vanilla max."""
    selector_BA = next_q_online_BA if next_q_online_BA is not None else next_q_target_BA
    next_actions_B = masked_argmax(selector_BA, next_action_mask_BA)
    next_value_B = next_q_target_BA.gather(1, next_actions_B.unsqueeze(1)).squeeze(1)
    return rewards_B + discounts_B * next_value_B


def dqn_loss(
    q_values_BA: torch.Tensor,
    actions_B: torch.Tensor,
    td_target_B: torch.Tensor,
    weights_B: torch.Tensor,
    huber_delta: float,
) -> DQNLoss:
    """Importance-weighted Huber loss between Q(s, a) and the (detached) target."""
    q_taken_B = q_values_BA.gather(1, actions_B.unsqueeze(1)).squeeze(1)
    target_B = td_target_B.detach()
    per_sample = F.huber_loss(q_taken_B, target_B, reduction="none", delta=huber_delta)
    return DQNLoss((weights_B * per_sample).mean(), (target_B - q_taken_B).detach(), q_taken_B, target_B)
