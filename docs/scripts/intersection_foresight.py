"""How often can yielding avoid the crash on intersection-v0, for a driver that sees the future?

Both torsos of the intersection task drive through as the `idle` baseline does, and about half of
those episodes crash. This script asks how much of that is avoidable by the agent's own actions.
For each of the task's evaluation episodes it copies the simulator (traffic spawns included, so
every copy meets the same future) and plays a family of open-loop speed plans: accelerate (FASTER)
throughout; wait ``k`` decisions braking (SLOWER) or keeping speed (IDLE), then accelerate to the
end, k = 1..``max_wait``; and IDLE throughout (the `idle` baseline). It reports the `idle` plan and
the best plan of the episode (highest return), scored by the task's own episode metrics. A plan is
fixed in advance, so the best one is a lower bound on a driver with foresight. It bounds no agent:
an agent reacts at every decision, which no plan here does, but sees neither the future spawns nor
the other vehicles' routes.

    .venv/bin/python docs/scripts/intersection_foresight.py --episodes 50 --max-wait 6
"""

from __future__ import annotations

import argparse
import copy
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

from attnq.config import load_task
from attnq.domain import RewardAdapter
from attnq.runtime import prepare_task

TASK_FILE = Path(__file__).resolve().parents[2] / "tasks" / "intersection.yaml"


def play(env: gym.Env, plan: list[int], then: int, adapter: RewardAdapter) -> dict[str, float]:
    """Play ``plan``, then ``then``, on ``env`` to the episode's end; the task's episode metrics."""
    episode, step, done = adapter.new_episode(), 0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(plan[step] if step < len(plan) else then)
        episode.add_step(float(reward), info)
        step, done = step + 1, terminated or truncated
    return episode.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--max-wait", type=int, default=6, help="longest wait, in decisions (1 s each)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*out of date.*")  # intersection-v0 is the task's env
    task = load_task(TASK_FILE)
    runtime = prepare_task(task)
    env, adapter = runtime.make_env(evaluation=True), runtime.reward_adapter()  # as evaluation makes them
    action = env.unwrapped.action_type.actions_indexes  # meta-action name -> index, as the baselines read it
    duration = int(env.unwrapped.config["duration"])
    plans = {"idle": [action["IDLE"]] * duration, "accelerate": []}  # no wait: braking or keeping speed 0 times
    for wait in range(1, args.max_wait + 1):
        plans[f"brake {wait}"] = [action["SLOWER"]] * wait
        plans[f"keep {wait}"] = [action["IDLE"]] * wait
    idle, best, chosen = [], [], {}
    for episode in range(args.episodes):
        env.reset(seed=task.eval.seed + episode)
        outcomes = {name: play(copy.deepcopy(env), plan, action["FASTER"], adapter) for name, plan in plans.items()}
        name = max(outcomes, key=lambda n: (outcomes[n]["return"], outcomes[n]["success"]))
        idle.append(outcomes["idle"])
        best.append(outcomes[name])
        chosen[name] = chosen.get(name, 0) + 1
    env.close()
    print(f"{args.episodes} episodes from seed {task.eval.seed} ({TASK_FILE.name}'s evaluation episodes)\n")
    print("| plan | return | crashed | success |\n|---|---|---|---|")
    for label, outcomes in (("idle throughout", idle), ("best plan of each episode", best)):
        means = {key: float(np.mean([o[key] for o in outcomes])) for key in ("return", "crashed", "success")}
        print(f"| {label} | {means['return']:.3f} | {means['crashed']:.2f} | {means['success']:.2f} |")
    print("\nbest plans:", ", ".join(f"{name} x{count}" for name, count in sorted(chosen.items())))


if __name__ == "__main__":
    main()
