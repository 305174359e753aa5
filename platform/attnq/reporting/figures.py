"""Learning curves: the mean over seeds with a 95 % bootstrap band, against env steps and wall time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt
import numpy as np

from attnq.checkpoints import atomic_write_bytes
from attnq.experiments.records import TaskRecord, learning_curve
from attnq.explain import png_bytes
from attnq.statistics import bootstrap_interval

GRID_POINTS = 50
FEW_POINTS = 8  # a run that logged fewer points is drawn at those points, with markers, not as a smooth band


def _band(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each run interpolated onto ``grid``; mean and a 95 % bootstrap interval of the mean per point."""
    values_RG = np.array([np.interp(grid, x, y) for x, y in curves])
    means, lows, highs = [], [], []
    for column in values_RG.T:
        estimate = bootstrap_interval(column, statistic=np.mean, resamples=500)
        means.append(estimate.point)
        lows.append(estimate.low)
        highs.append(estimate.high)
    return np.array(means), np.array(lows), np.array(highs)


def plot_learning_curves(record: TaskRecord, path: Path, metric: str = "return") -> bool:
    """Two panels (env steps, wall seconds), one line per torso. False when no run logged a curve."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    drawn = False
    for torso in record.torsos():
        curves = [learning_curve(run.run_dir, metric) for run in record.runs_of(torso)]
        curves = [c for c in curves if len(c[metric]) >= 2]
        if not curves:
            continue
        drawn = True
        # One grid of env steps that every seed reached; wall time is the seeds' mean at each point.
        start = max(c["env_steps"][0] for c in curves)
        stop = min(c["env_steps"][-1] for c in curves)
        fewest = min(len(c["env_steps"]) for c in curves)
        if fewest < FEW_POINTS:  # episodes longer than the logging interval: only a few points exist
            logged = np.asarray(min(curves, key=lambda c: len(c["env_steps"]))["env_steps"])
            grid = logged[(logged >= start) & (logged <= stop)]
        else:
            grid = np.linspace(start, stop, GRID_POINTS) if stop > start else np.array([start])
        mean, low, high = _band([(np.asarray(c["env_steps"]), np.asarray(c[metric])) for c in curves], grid)
        wall = np.mean([np.interp(grid, c["env_steps"], c["wall_seconds"]) for c in curves], axis=0)
        seeds = f"{len(curves)} seed" + ("s" if len(curves) != 1 else "")
        label = f"{torso}-dqn ({seeds}" + (f", {len(grid)} logged points)" if fewest < FEW_POINTS else ")")
        for ax, x in zip(axes, (grid, wall)):
            ax.plot(x, mean, marker="o" if fewest < FEW_POINTS else None, label=label)
            ax.fill_between(x, low, high, alpha=0.25)
    for ax, label in zip(axes, ("env steps", "wall-clock seconds of training")):
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"training episode {metric} (epsilon-greedy)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{record.task.name}: mean over seeds, 95 % bootstrap band", fontsize=10)
    fig.tight_layout()
    if drawn:
        atomic_write_bytes(path, png_bytes(fig))
    plt.close(fig)
    return drawn
