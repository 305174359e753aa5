"""Target-network updates (hard copies every N env steps, or Polyak averaging every update) and
the moving average of the online weights that ``learner.weight_average_decay`` evaluates."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def hard_update(target_network: nn.Module, online_network: nn.Module) -> None:
    target_network.load_state_dict(online_network.state_dict())


@torch.no_grad()
def polyak_update(target_network: nn.Module, online_network: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * online."""
    for target, online in zip(target_network.parameters(), online_network.parameters()):
        target.lerp_(online, tau)
    for target, online in zip(target_network.buffers(), online_network.buffers()):
        target.copy_(online)


class TargetUpdater:
    """Decides when and how to move the target network, counting env steps (not updates)."""

    def __init__(self, mode: str, interval_env_steps: int, tau: float) -> None:
        self.mode, self.interval, self.tau = mode, interval_env_steps, tau
        self.last_sync_step = 0

    def step(self, target_network: nn.Module, online_network: nn.Module, env_step: int) -> bool:
        """Called after each gradient update; returns True when the target moved."""
        if self.mode == "polyak":
            polyak_update(target_network, online_network, self.tau)
            return True
        if env_step - self.last_sync_step >= self.interval:
            hard_update(target_network, online_network)
            self.last_sync_step = env_step
            return True
        return False


class WeightAverage:
    """Exponential moving average of the online network's weights, one step per gradient update.

    Polyak-Ruppert averaging of the iterates: late updates on noisy TD targets make the weights
    jitter around a solution, and their average sits closer to it (Nikishin et al. 2018 report the
    same for stochastic weight averaging in deep RL). The first updates use a smaller decay,
    ``(1 + n) / (10 + n)`` after n updates, so that the average does not hold on to the
    initial weights.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def decay_after(self, updates_done: int) -> float:
        return min(self.decay, (1 + updates_done) / (10 + updates_done))

    def step(self, averaged_network: nn.Module, online_network: nn.Module, updates_done: int) -> None:
        polyak_update(averaged_network, online_network, tau=1.0 - self.decay_after(updates_done))
