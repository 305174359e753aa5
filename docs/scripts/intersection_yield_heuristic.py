"""Does slowing down for crossing traffic beat driving straight through on intersection-v0?

Both torsos of the intersection benchmark settle on the `idle` baseline's policy (keep the speed,
about half the episodes crash). This script asks whether a simple rule that sees the same
observation can do better: extrapolate every observed vehicle and the ego vehicle at constant
velocity for `horizon` seconds; if any comes within `radius` metres, brake (SLOWER), else
accelerate (FASTER). It uses highway-env's own intersection-v0 configuration (absolute,
normalised coordinates) and the benchmark's 50 evaluation seeds (20000-20049).

    .venv/bin/python docs/scripts/intersection_yield_heuristic.py --horizons 1 2 3
"""

from __future__ import annotations

import argparse
import warnings

import gymnasium as gym
import highway_env  # noqa: F401  (registers intersection-v0)
import numpy as np

from attnq_highway.encoder import KinematicsLayout

SLOWER, FASTER = 0, 2
FIRST_SEED = 20000  # tasks/intersection.yaml: eval.seed


def conflict_ahead(observation: np.ndarray, layout: KinematicsLayout, horizon_s: float, radius_m: float) -> bool:
    """Does any observed vehicle come within ``radius_m`` of the ego car in the next ``horizon_s``,
    all moving at constant velocity?"""

    def state(row: np.ndarray) -> np.ndarray:  # x, y, vx, vy in metres and m/s
        return np.array([layout.physical(row, name) for name in ("x", "y", "vx", "vy")])

    ego = state(observation[0])
    others = [state(row) for row in observation[1:] if row[0] > 0.5]
    for t in np.arange(0.5, horizon_s + 1e-9, 0.5):
        ego_at_t = ego[:2] + ego[2:] * t
        if any(np.hypot(*(other[:2] + other[2:] * t - ego_at_t)) < radius_m for other in others):
            return True
    return False


def evaluate(horizon_s: float, radius_m: float, episodes: int) -> dict[str, float]:
    env = gym.make("intersection-v0")
    layout = KinematicsLayout.from_env(env)  # the driving plugin's reading of the observation
    returns, crashes, successes = [], 0, 0
    for episode in range(episodes):
        observation, _ = env.reset(seed=FIRST_SEED + episode)
        episode_return, done = 0.0, False
        while not done:
            action = SLOWER if conflict_ahead(observation, layout, horizon_s, radius_m) else FASTER
            observation, reward, terminated, truncated, _ = env.step(action)
            episode_return += float(reward)
            done = terminated or truncated
        vehicle = env.unwrapped.vehicle
        crashes += int(vehicle.crashed)
        successes += int(env.unwrapped.has_arrived(vehicle) and not vehicle.crashed)
        returns.append(episode_return)
    env.close()
    return {"return": float(np.mean(returns)), "crashed": crashes / episodes, "success": successes / episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=float, nargs="+", default=[1.0, 2.0, 3.0], help="seconds to extrapolate")
    parser.add_argument("--radius", type=float, default=6.0, help="metres that count as a conflict")
    parser.add_argument("--episodes", type=int, default=50)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*out of date.*")  # intersection-v0 is the benchmark's env
    print("| horizon s | radius m | return | crashed | success |\n|---|---|---|---|---|")
    for horizon in args.horizons:
        result = evaluate(horizon, args.radius, args.episodes)
        print(
            f"| {horizon:g} | {args.radius:g} | {result['return']:.3f} | {result['crashed']:.2f} | "
            f"{result['success']:.2f} |"
        )


if __name__ == "__main__":
    main()
