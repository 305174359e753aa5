"""What did the attention look at? One greedy episode, each decision's attention over labelled tokens.

Writes ``attention.json`` (per step: action, labels, weights, positions) and ``attention.png``: a
heatmap of decisions x token slots with, beside each row, the action's name and the three most
attended tokens by label. When the encoder gives token positions, ``attention-scene.png`` draws a
few decisions as scenes, each token at its place, coloured and sized by attention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt
import numpy as np

from attnq.agent import TrainedAgent
from attnq.checkpoints import atomic_write_bytes, atomic_write_text
from attnq.config import TaskConfig

TOP_K = 3
SCENE_FILE = "attention-scene.png"
MAX_TICK_LABELS = 80  # beyond this, token labels overlap; the side text still names the top tokens


@dataclass
class AttentionStep:
    step: int
    action: int | list[int]  # a list for slates
    action_name: str
    labels: list[str]
    weights: list[float]
    positions: list[list[float] | None] | None = None

    def top(self, k: int = TOP_K) -> list[tuple[str, float]]:
        order = np.argsort(self.weights)[::-1][:k]
        return [(self.labels[i], self.weights[i]) for i in order]


def record_episode(
    agent: TrainedAgent, seed: int, max_steps: int = 1000
) -> tuple[list[AttentionStep], dict[str, float]]:
    env = agent.runtime.make_env(evaluation=True)
    action_names = agent.runtime.action_names()
    metrics = agent.runtime.reward_adapter().new_episode()
    steps: list[AttentionStep] = []
    try:
        observation, _ = env.reset(seed=seed)
        for t in range(max_steps):
            action = agent(np.asarray(observation)[None])[0]
            slate = [int(a) for a in np.atleast_1d(action)]
            weights, has_cls = agent.query_attention(observation, slate[0])
            encoder = agent.q_network.encoder
            labels = encoder.token_labels(np.asarray(observation))
            positions = encoder.token_positions(np.asarray(observation))
            if has_cls:
                labels = ["[CLS]", *labels]
                positions = None if positions is None else [None, *positions]
            steps.append(
                AttentionStep(
                    t,
                    slate if len(slate) > 1 else slate[0],
                    " + ".join(action_names[a] for a in slate),
                    labels,
                    [float(w) for w in weights],
                    None if positions is None else [None if p is None else [float(v) for v in p] for p in positions],
                )
            )
            observation, reward, terminated, truncated, info = env.step(action)
            metrics.add_step(float(reward), info)
            if terminated or truncated:
                break
    finally:
        env.close()
    return steps, metrics.summary()


def plot_attention(steps: list[AttentionStep], title: str, path: Path, query: str = "the query") -> None:
    weights_ST = np.array([s.weights for s in steps])
    # Masked tokens get exactly zero attention; columns no decision could see (padding, empty
    # slots) are left out so the tokens that were there stay readable.
    shown_T = weights_ST.max(axis=0) > 0.0
    weights_ST = weights_ST[:, shown_T]
    shown_labels = [label for label, shown in zip(steps[-1].labels, shown_T) if shown]
    height = max(3.0, 0.28 * len(steps) + 1.5)
    fig, (ax, text_ax) = plt.subplots(1, 2, figsize=(13, height), gridspec_kw={"width_ratios": [1, 1.3]})
    image = ax.imshow(weights_ST, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(weights_ST.max(), 1e-6))
    ax.set_xlabel("token (labels of the last decision; absent tokens left out)")
    if weights_ST.shape[1] <= MAX_TICK_LABELS:
        ax.set_xticks(range(weights_ST.shape[1]), shown_labels, rotation=90, fontsize=6)
    ax.set_ylabel("decision")
    ax.set_title(title, fontsize=8, loc="left")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=f"attention of {query}")
    text_ax.axis("off")
    text_ax.set_ylim(len(steps) - 0.5, -0.5)
    for s in steps:
        row = "; ".join(f"{label} ({w:.2f})" for label, w in s.top())
        text_ax.text(0.0, s.step, f"{s.action_name}: {row}", fontsize=7, va="center", family="monospace")
    fig.tight_layout()
    buffer = png_bytes(fig)
    plt.close(fig)
    atomic_write_bytes(path, buffer)


def plot_scene(steps: list[AttentionStep], title: str, path: Path, panels: int = 4) -> None:
    """Tokens at their positions, coloured and sized by attention, at a few decisions of the episode."""
    chosen = [steps[i] for i in np.unique(np.linspace(0, len(steps) - 1, min(panels, len(steps))).astype(int))]
    fig, axes = plt.subplots(len(chosen), 1, figsize=(10, 1.9 * len(chosen) + 0.6), squeeze=False)
    for ax, step in zip(axes[:, 0], chosen):
        placed = [
            (p, w, label) for p, w, label in zip(step.positions or [], step.weights, step.labels) if p is not None
        ]
        xs, ys = [p[0] for p, _, _ in placed], [p[1] for p, _, _ in placed]
        weights = np.array([w for _, w, _ in placed])
        ax.scatter(
            xs,
            ys,
            c=weights,
            cmap="viridis",
            vmin=0.0,
            vmax=max(float(weights.max()), 1e-6),
            s=80 + 900 * weights,
            marker="s",
            edgecolors="black",
            linewidths=0.5,
        )
        for (x, y), w, label in ((p, w, label) for p, w, label in placed):
            ax.annotate(f"{label.split(':')[0]} {w:.2f}", (x, y), fontsize=6, xytext=(4, 6), textcoords="offset points")
        ax.set_title(f"decision {step.step}: {step.action_name}", fontsize=8, loc="left")
        ax.invert_yaxis()  # highway-env's y grows to the right-hand lanes; draw them below
        ax.grid(alpha=0.3)
        ax.set_aspect("auto")
    axes[-1, 0].set_xlabel("position relative to the query token (driving: metres ahead / to the side of ego)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = png_bytes(fig)
    plt.close(fig)
    atomic_write_bytes(path, buffer)


def png_bytes(fig) -> bytes:
    import io

    stream = io.BytesIO()
    fig.savefig(stream, format="png", dpi=110)
    return stream.getvalue()


def attending_token(task: TaskConfig) -> str:
    """Whose attention row is drawn: the pooled query, or for per-token Q-values the token of the
    first action chosen (it is that token's output that scored it)."""
    return (
        "the first recommended item"
        if task.model.head == "per_token" and task.model.torso == "transformer"
        else "the query"
    )


def explain(agent: TrainedAgent, out_dir: Path, seed: int | None = None) -> tuple[Path, Path, dict[str, float]]:
    seed = agent.task.eval.seed if seed is None else seed
    steps, summary = record_episode(agent, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "attention.json", out_dir / "attention.png"
    payload = {
        "task": agent.task.name,
        "checkpoint": str(agent.checkpoint),
        "seed": seed,
        "episode": summary,
        "steps": [s.__dict__ for s in steps],
    }
    atomic_write_text(json_path, json.dumps(payload, indent=1))
    metric_text = ", ".join(f"{k}={v:.2f}" for k, v in summary.items())
    plot_attention(steps, f"{agent.task.name} seed {seed}: {metric_text}", png_path, attending_token(agent.task))
    if steps and steps[0].positions is not None:
        plot_scene(
            steps, f"{agent.task.name} seed {seed}: attention of the query token in the scene", out_dir / SCENE_FILE
        )
    return png_path, json_path, summary
