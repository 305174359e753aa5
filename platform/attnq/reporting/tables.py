"""The one table formatter: a task's agents (IQM over seeds, or one row per seed), baselines, anchors.

Report pages and ``attnq bench`` print the same table from the same summary
(:func:`attnq.reporting.markdown.summarise`); ``per_seed`` adds a row per run with its speed.
"""

from __future__ import annotations

import numpy as np

from attnq.statistics import Estimate


def cell(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def results_table(summary: dict, per_seed: bool = False) -> str:
    """Markdown table of one task summary. With ``per_seed``: a row per run with its return's
    interval over the evaluation episodes, training env steps/s and the random-action env steps/s
    of the same vector env (the simulator's ceiling), then the IQM rows."""
    metrics = summary["metrics"]
    header = ["policy", "runs", *metrics, "env steps/s"]
    if per_seed:
        header += ["return 95 % CI (episodes)", "random-action steps/s", "ratio"]
    lines = [_row(header), "|" + "---|" * len(header)]
    extra = ["-", "-", "-"] if per_seed else []
    for torso, agent in summary["agents"].items():
        if per_seed:
            for seed in agent["seeds"]:
                values, speed = agent["per_seed"][str(seed)], agent["per_seed_speed"][str(seed)]
                train, rand = speed["train_env_steps_per_second"], speed["random_env_steps_per_second"]
                interval = speed["return_interval"]
                lines.append(
                    _row(
                        [
                            f"{torso}-dqn seed {seed}",
                            "1",
                            *[cell(values[m]) for m in metrics],
                            cell(train, ".0f"),
                            "-" if not interval else f"[{interval[0]:.3f}, {interval[1]:.3f}]",
                            cell(rand, ".0f"),
                            cell(train / rand if train and rand else None, ".2f"),
                        ]
                    )
                )
        speed = agent["env_steps_per_second"]
        lines.append(
            _row(
                [
                    f"{torso}-dqn",
                    str(len(agent["seeds"])),
                    *[Estimate(**agent["iqm"][m]).format() for m in metrics],
                    cell(speed, ".0f"),
                    *extra,
                ]
            )
        )
    for name, values in summary["baselines"].items():
        lines.append(_row([f"baseline: {name}", "-", *[cell(values.get(m)) for m in metrics], "-", *extra]))
    for number, anchor in enumerate(summary["anchors"], start=1):
        lines.append(
            _row(
                [f"{anchor['policy']} [{number}]", "-", *[cell(anchor["metrics"].get(m)) for m in metrics], "-", *extra]
            )
        )
    return "\n".join(lines)
