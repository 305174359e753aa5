"""The DQN loss with a Double-DQN target (van Hasselt et al. 2016) and the Huber loss.

    td_target = r + discount * Q_target(s', argmax_a Q_online(s', a))      (double)
    td_target = r + discount * max_a Q_target(s', a)                       (vanilla)

``discount`` already holds gamma**n for n-step returns and 0 at terminal states.

Advantage learning (Baird 1999; Bellemare et al. 2016, "Increasing the action gap") lowers the
target of every non-greedy action by alpha times its gap under the target network:

    al_target = td_target - alpha * (max_b Q_target(s, b) - Q_target(s, a))

The greedy action's target is unchanged, and at the fixed point a worse action's gap is its true
gap divided by (1 - alpha): where actions differ by less than the estimates' noise, the ranking
(which is all the greedy policy uses) survives more of that noise.

Slates (actions ``[B, k]``): a slate's value is decomposed over its items as in SlateQ (Ie et al.
2019), Q(s, A) = sum_i P(i | s, A) Q(s, i). The item the user consumed is observed, so only its
value is regressed on the target (SlateQ's item-wise update); the replay stores the other slots as
``NOT_CREDITED``. When nothing was consumed every item of the slate is regressed. The user's choice
probabilities for the *next* slate are not observed and are taken as uniform: its value is the mean
of the k best items' values. With k = 1 every formula above is unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from attnq.model.transformer_dqn import greedy_slate, masked_argmax


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


def advantage_learning_target(
    td_target_B: torch.Tensor,
    q_target_BA: torch.Tensor,
    actions_B: torch.Tensor,
    action_mask_BA: torch.Tensor | None,
    alpha: float,
) -> torch.Tensor:
    """``td_target - alpha * (V(s) - Q(s, a))`` with V and Q from the target network at the state
    the action was taken in; V is the best admissible action's value."""
    state_value_B = slate_value(q_target_BA, masked_argmax(q_target_BA, action_mask_BA))
    action_gap_B = state_value_B - slate_value(q_target_BA, actions_B)
    return td_target_B - alpha * action_gap_B


NOT_CREDITED = -1  # a slot of a stored slate whose item the user did not consume


def slate_value(q_values_BA: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q(s, a) for actions ``[B]``; for slates ``[B, k]`` the mean value of the credited items
    (slots holding ``NOT_CREDITED`` are left out; see the module docstring)."""
    actions_BK = actions.unsqueeze(1) if actions.dim() == 1 else actions
    credited_BK = actions_BK != NOT_CREDITED
    item_values_BK = q_values_BA.gather(1, actions_BK.clamp(min=0)) * credited_BK
    return item_values_BK.sum(dim=1) / credited_BK.sum(dim=1).clamp(min=1)


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
