"""Interval estimates across seeds, after Agarwal et al. 2021 ("Deep RL at the edge of the statistical precipice").

With a handful of seeds a mean alone says little; reports give the interquartile mean (the mean of
the middle 50 % of runs, robust to one outlier seed) and a 95 % percentile-bootstrap interval over
seeds. The bootstrap is seeded, so a report regenerated from the same runs prints the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

Statistic = Callable[[np.ndarray], float]


def interquartile_mean(values: Sequence[float]) -> float:
    """Mean of the values between the 25th and 75th percentiles (scipy's 25 % trimmed mean)."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("interquartile_mean of no values")
    return float(stats.trim_mean(array, 0.25))


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval; ``n`` is the number of runs behind it."""

    point: float
    low: float
    high: float
    n: int

    def format(self, digits: int = 3) -> str:
        if self.n < 2:
            return f"{self.point:.{digits}f}"
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def to_dict(self) -> dict[str, float]:
        return {"point": self.point, "low": self.low, "high": self.high, "n": self.n}


def bootstrap_interval(
    values: Sequence[float],
    statistic: Statistic = interquartile_mean,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap: resample the runs with replacement, take the statistic's quantiles."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("bootstrap_interval of no values")
    point = float(statistic(array))
    if array.size == 1:
        return Estimate(point, point, point, 1)
    rng = np.random.default_rng(seed)
    samples = rng.choice(array, size=(resamples, array.size), replace=True)
    replicates = np.array([statistic(row) for row in samples])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return Estimate(point, float(low), float(high), int(array.size))
