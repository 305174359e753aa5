"""How long one TD update takes, eager against ``trainer.compile``, for a task's own network.

One update here is what ``DQNModule.training_step`` costs plus Adam's step: the TD loss on a replay
batch (online pass with gradients, target and Double-DQN passes) and its backward pass. Both
versions run in the same process on the same batches, in alternating blocks, so a machine whose
speed drifts (shared cores) affects both alike. Prints milliseconds per update.

    .venv/bin/python docs/scripts/update_timing.py sepsis --updates 200
"""

from __future__ import annotations

import argparse
import time

import torch

from attnq.catalog import find_task
from attnq.config import load_task
from attnq.training.dqn_module import DQNModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="task name or path to a task file")
    parser.add_argument("--updates", type=int, default=200, help="timed updates per version")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks the updates are split into")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="task overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task(find_task(args.task, None), [*args.set, "trainer.compile=true"])
    module = DQNModule(task.to_dict())
    module.on_fit_start()  # the random warm-up fills the replay
    batches = [module.sample_batch() for _ in range(16)]
    module.on_fit_end()
    optimizer = torch.optim.Adam(module.q_network.parameters(), lr=task.learner.lr)
    versions = {"eager": module.td_loss, "compiled": module.compiled_td_loss}

    def updates(loss_function, count: int) -> float:
        started = time.perf_counter()
        for i in range(count):
            loss = loss_function(batches[i % len(batches)]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - started

    started = time.perf_counter()
    updates(versions["compiled"], 3)
    print(f"compiling took {time.perf_counter() - started:.0f} s")
    updates(versions["eager"], 10)
    seconds = {name: 0.0 for name in versions}
    per_block = max(1, args.updates // args.blocks)
    for _ in range(args.blocks):
        for name, loss_function in versions.items():
            seconds[name] += updates(loss_function, per_block)
    for name, total in seconds.items():
        print(f"{name}: {1000 * total / (per_block * args.blocks):.1f} ms per update "
              f"(batch {task.replay.batch_size}, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
