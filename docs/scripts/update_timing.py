"""How long one TD update takes, eager against ``trainer.compile``, for a task's own network.

One update here is what ``DQNModule.training_step`` costs plus Adam's step: the TD loss on a replay
batch (online pass with gradients, target and Double-DQN passes) and its backward pass. Both
versions run in the same process on the same batches, in alternating blocks, so a machine whose
speed drifts (shared cores) affects both alike. Prints milliseconds per update.

``--every-token`` also times both versions with the last encoder block computing every token's
output, as the network did before it computed the pooled query token alone (and still does when
attention maps are asked for): the figure of what that change saved.

    .venv/bin/python docs/scripts/update_timing.py sepsis --updates 200 [--every-token]
"""

from __future__ import annotations

import argparse
import time

import torch

from attnq.catalog import find_task
from attnq.config import load_task
from attnq.model.transformer_dqn import PreLNBlock
from attnq.training.dqn_module import DQNModule


class LastBlock:
    """Whether the last block computes every token's output (the network before the change)."""

    every_token = False


def let_the_last_block_compute_every_token() -> None:
    """Make ``LastBlock.every_token`` switch the blocks back to computing every token's output."""
    query_only_forward = PreLNBlock.forward

    def forward(self, x_BTD, padding_BT, return_attention, only=None, keys_K=None):
        return query_only_forward(
            self, x_BTD, padding_BT, return_attention, None if LastBlock.every_token else only, keys_K
        )

    PreLNBlock.forward = forward


def timed_updates(loss_function, optimizer: torch.optim.Optimizer, batches: list, count: int) -> float:
    """Seconds that ``count`` updates take: the TD loss on the batches in turn, its backward pass and
    the optimizer's step (also used by torso_update_cost.py)."""
    started = time.perf_counter()
    for i in range(count):
        loss = loss_function(batches[i % len(batches)]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="task name or path to a task file")
    parser.add_argument("--updates", type=int, default=200, help="timed updates per version")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks the updates are split into")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="task overrides")
    parser.add_argument("--every-token", action="store_true", help="also time the last block over every token")
    args = parser.parse_args()
    if args.every_token:
        let_the_last_block_compute_every_token()
    torch.set_num_threads(args.threads)
    task = load_task(find_task(args.task, None), [*args.set, "trainer.compile=true"])
    module = DQNModule(task.to_dict())
    module.on_fit_start()  # the random warm-up fills the replay
    batches = [module.sample_batch() for _ in range(16)]
    module.on_fit_end()
    optimizer = module.make_optimizer()  # the one the task trains with
    versions = {("eager", False): module.td_loss, ("compiled", False): module.compiled_td_loss}
    if args.every_token:
        versions |= {("eager", True): module.td_loss, ("compiled", True): module.compiled_td_loss}

    def updates(version: tuple[str, bool], count: int) -> float:
        LastBlock.every_token = version[1]
        return timed_updates(versions[version], optimizer, batches, count)

    started = time.perf_counter()
    for version in versions:
        if version[0] == "compiled":
            updates(version, 3)
    print(f"compiling took {time.perf_counter() - started:.0f} s")
    updates(("eager", False), 10)
    seconds = {version: 0.0 for version in versions}
    per_block = max(1, args.updates // args.blocks)
    for _ in range(args.blocks):
        for version in versions:
            seconds[version] += updates(version, per_block)
    for (name, every_token), total in seconds.items():
        last_block = "every token" if every_token else "query token alone"
        print(
            f"{name}, last block {last_block}: {1000 * total / (per_block * args.blocks):.1f} ms per update "
            f"(batch {task.replay.batch_size}, {args.threads} thread(s))"
        )


if __name__ == "__main__":
    main()
