"""What did the attention look at? One greedy episode, each decision's attention over labelled tokens.

Writes ``attention.json`` (per step: action, labels, weights, positions) and ``attention.png``: a
heatmap of decisions x token slots, coloured by attention relative to the uniform share, with,
beside each row, the action's name and the three most attended tokens by label. When the encoder
gives token positions, ``attention-scene.png`` draws a few decisions as scenes, each token at its
place, coloured and sized by attention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from attnq.agent import TrainedAgent
from attnq.checkpoints import atomic_write_bytes, atomic_write_text
from attnq.config import TaskConfig

TOP_K = 3
SCENE_FILE = "attention-scene.png"
MAX_COLUMNS = 60  # tokens drawn with their labels; more would overlap
MAX_ROWS = 40  # decisions drawn; a longer episode is sampled evenly
RELATIVE_RANGE = 8.0  # colours saturate at 8 times (and an eighth of) the uniform share


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
            weights, cls_tokens = agent.query_attention(observation, slate[0])
            encoder = agent.q_network.encoder
            labels = encoder.token_labels(np.asarray(observation))
            positions = encoder.token_positions(np.asarray(observation))
            if cls_tokens:
                labels = [*cls_labels(cls_tokens), *labels]
                positions = None if positions is None else [*[None] * cls_tokens, *positions]
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


def cls_labels(count: int) -> list[str]:
    """The learned query tokens' labels: [CLS], or [CLS1] ... [CLSk] when there are several."""
    return ["[CLS]"] if count == 1 else [f"[CLS{i + 1}]" for i in range(count)]


def relative_to_uniform(weights: np.ndarray) -> np.ma.MaskedArray:
    """Attention as a multiple of the uniform share among the tokens a decision could see (1: all
    alike, 4: four times its share); masked tokens (exactly zero attention) come back masked. Colours
    on this scale do not make near-uniform attention look hot, as colours scaled to the maximum do."""
    weights = np.asarray(weights, dtype=float)
    visible = weights > 0.0
    shares = np.maximum(visible.sum(axis=-1, keepdims=True), 1)
    return np.ma.masked_array(np.where(visible, weights * shares, 1.0), mask=~visible)


def _attention_colours() -> tuple[LogNorm, matplotlib.colors.Colormap]:
    """One scale for every picture: log of attention relative to uniform, white at 1."""
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.85")  # masked tokens: grey
    return LogNorm(vmin=1.0 / RELATIVE_RANGE, vmax=RELATIVE_RANGE, clip=True), cmap


COLOUR_LABEL = "attention / uniform share (1: all visible tokens alike)"
SHARE_TICKS = {1 / 8: "1/8", 1 / 4: "1/4", 1 / 2: "1/2", 1.0: "1", 2.0: "2", 4.0: "4", 8.0: "8"}


def _ticks(colorbar) -> None:
    colorbar.set_ticks(list(SHARE_TICKS), labels=list(SHARE_TICKS.values()))
    colorbar.minorticks_off()


def plot_attention(steps: list[AttentionStep], title: str, path: Path, query: str = "the query") -> None:
    shown_steps = steps
    if len(steps) > MAX_ROWS:  # a long episode: evenly spaced decisions keep the picture readable
        shown_steps = [steps[i] for i in np.unique(np.linspace(0, len(steps) - 1, MAX_ROWS).astype(int))]
    weights_ST = np.array([s.weights for s in shown_steps])
    ratios_ST = relative_to_uniform(weights_ST)
    # Columns no decision could see (padding, empty slots) are left out; of many tokens, the most
    # attended ones are kept so that each can carry its label.
    columns = np.flatnonzero(weights_ST.max(axis=0) > 0.0)
    dropped = 0
    if len(columns) > MAX_COLUMNS:
        strongest = np.argsort(ratios_ST[:, columns].filled(0.0).max(axis=0))[::-1][:MAX_COLUMNS]
        dropped, columns = len(columns) - MAX_COLUMNS, np.sort(columns[strongest])
    labels = [steps[-1].labels[i] for i in columns]
    height = max(3.0, 0.28 * len(shown_steps) + 2.2)
    fig, (ax, text_ax) = plt.subplots(1, 2, figsize=(13, height), gridspec_kw={"width_ratios": [1, 1.3]})
    norm, cmap = _attention_colours()
    image = ax.imshow(ratios_ST[:, columns], aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_xticks(range(len(columns)), labels, rotation=90, fontsize=6)
    ax.set_xlabel(
        "token (labels of the last decision)"
        + (f"; the {MAX_COLUMNS} most attended of {MAX_COLUMNS + dropped} shown" if dropped else "")
    )
    ax.set_yticks(range(len(shown_steps)), [str(s.step) for s in shown_steps], fontsize=6)
    ax.set_ylabel(
        "decision" + (f" ({len(shown_steps)} of {len(steps)}, evenly spaced)" if shown_steps != steps else "")
    )
    ax.set_title(title, fontsize=8, loc="left")
    _ticks(fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=f"{COLOUR_LABEL}, of {query}"))
    text_ax.axis("off")
    text_ax.set_ylim(len(shown_steps) - 0.5, -0.5)
    for row, s in enumerate(shown_steps):
        top = "; ".join(f"{label} ({w:.2f})" for label, w in s.top())
        text_ax.text(0.0, row, f"{s.step} {s.action_name}: {top}", fontsize=7, va="center", family="monospace")
    fig.tight_layout()
    buffer = png_bytes(fig)
    plt.close(fig)
    atomic_write_bytes(path, buffer)


def plot_scene(steps: list[AttentionStep], title: str, path: Path, panels: int = 4) -> None:
    """Tokens at their positions, coloured by attention relative to uniform (one scale for every
    panel) and sized by attention, at a few decisions of the episode."""
    chosen = [steps[i] for i in np.unique(np.linspace(0, len(steps) - 1, min(panels, len(steps))).astype(int))]
    fig, axes = plt.subplots(len(chosen), 1, figsize=(10, 1.9 * len(chosen) + 0.8), squeeze=False, layout="constrained")
    norm, cmap = _attention_colours()
    for ax, step in zip(axes[:, 0], chosen):
        ratios = relative_to_uniform(np.array(step.weights))
        placed = [
            (p, w, r, label)
            for p, w, r, label in zip(step.positions or [], step.weights, ratios.filled(np.nan), step.labels)
            if p is not None
        ]
        ax.scatter(
            [p[0] for p, *_ in placed],
            [p[1] for p, *_ in placed],
            c=[r for _, _, r, _ in placed],
            cmap=cmap,
            norm=norm,
            s=[80 + 900 * w for _, w, _, _ in placed],
            marker="s",
            edgecolors="black",
            linewidths=0.5,
        )
        for (x, y), w, _, label in placed:
            ax.annotate(f"{label.split(':')[0]} {w:.2f}", (x, y), fontsize=6, xytext=(4, 6), textcoords="offset points")
        ax.set_title(f"decision {step.step}: {step.action_name}", fontsize=8, loc="left")
        ax.invert_yaxis()  # highway-env's y grows to the right-hand lanes; draw them below
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("position relative to the query token (driving: metres ahead / to the side of ego)")
    _ticks(
        fig.colorbar(
            matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap),
            ax=axes[:, 0].tolist(),
            fraction=0.03,
            label=COLOUR_LABEL,
        )
    )
    fig.suptitle(title, fontsize=9)
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
