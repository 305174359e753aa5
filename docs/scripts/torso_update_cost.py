"""How much one Transformer-DQN update costs against one MLP-ablation update, at each task's sizes.

For every task named, both torsos are built from the same task (only ``model.torso`` differs), each
fills its replay with the random warm-up, and then the two are timed in the same process on their
own replay batches, in alternating blocks, so a machine whose speed drifts affects both alike. One
update is the TD loss (eager, or compiled where the task compiles) with its backward pass and
Adam's step, as in training. Prints milliseconds per update and the ratio.

    .venv/bin/python docs/scripts/torso_update_cost.py highway-fast sepsis recsim-interest scan-simple
"""

from __future__ import annotations

import argparse
import functools

import torch
from update_timing import timed_updates  # the sibling script: one definition of a timed update

from attnq.catalog import load_named_task
from attnq.registry import load_plugins
from attnq.training.dqn_module import DQNModule


def update_timer(task_dict: dict, batches: int = 16):
    """A function that runs N updates of this task's network and returns the seconds they took."""
    module = DQNModule(task_dict)
    module.on_fit_start()  # the random warm-up fills the replay
    samples = [module.sample_batch() for _ in range(batches)]
    module.on_fit_end()
    loss_function = module.compiled_td_loss or module.td_loss
    optimizer = module.make_optimizer()  # the one the task trains with

    return functools.partial(timed_updates, loss_function, optimizer, samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+", help="task names or task files")
    parser.add_argument("--updates", type=int, default=200, help="timed updates per torso")
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks the updates are split into")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every task")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    host = load_plugins()
    print(f"| task | batch | transformer ms/update | mlp ms/update | ratio |  ({args.threads} thread(s))")
    print("|---|---|---|---|---|")
    for name in args.tasks:
        task = load_named_task(name, host, args.set)
        timers = {
            torso: update_timer(load_named_task(name, host, [*args.set, f"model.torso={torso}"]).to_dict())
            for torso in ("transformer", "mlp")
        }
        for timer in timers.values():
            timer(10)  # warm-up (and compilation, where the task compiles)
        seconds = dict.fromkeys(timers, 0.0)
        per_block = max(1, args.updates // args.blocks)
        for _ in range(args.blocks):
            for torso, timer in timers.items():
                seconds[torso] += timer(per_block)
        ms = {torso: 1000 * total / (per_block * args.blocks) for torso, total in seconds.items()}
        print(
            f"| {task.name} | {task.replay.batch_size} | {ms['transformer']:.2f} | {ms['mlp']:.2f} "
            f"| {ms['transformer'] / ms['mlp']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
