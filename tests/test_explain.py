"""Attention pictures: the colour scale (attention relative to the uniform share) against a
brute-force count, and pictures that stay readable for long episodes and many tokens."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib import image as mpimg

from attnq.explain import MAX_COLUMNS, MAX_ROWS, AttentionStep, plot_attention, plot_scene, relative_to_uniform


def _brute_force(row: list[float]) -> list[float | None]:
    visible = [w for w in row if w > 0]
    return [w * len(visible) if w > 0 else None for w in row]


@pytest.mark.parametrize("tokens", [1, 2, 3, 7, 16, 65, 200])
def test_relative_attention_matches_a_brute_force_count(tokens):
    rng = np.random.default_rng(tokens)
    for _ in range(20):
        weights = rng.random((5, tokens)) * (rng.random((5, tokens)) > 0.3)  # some tokens masked
        weights[:, 0] = np.maximum(weights[:, 0], 1e-3)  # each row sees at least one token
        weights /= weights.sum(axis=1, keepdims=True)  # rows of an attention matrix sum to 1
        ratios = relative_to_uniform(weights)
        for row, ratio_row in zip(weights, ratios):
            for expected, got, masked in zip(_brute_force(list(row)), ratio_row.filled(np.nan), ratio_row.mask):
                assert masked == (expected is None)
                if expected is not None:
                    assert got == pytest.approx(expected)
            assert ratio_row.mean() == pytest.approx(1.0)  # the visible tokens' shares average to uniform
    np.testing.assert_allclose(relative_to_uniform(np.full((3, tokens), 1.0 / tokens)), 1.0)  # uniform is 1


def _episode(steps: int, tokens: int, seed: int = 0) -> list[AttentionStep]:
    rng = np.random.default_rng(seed)
    episode = []
    for t in range(steps):
        weights = rng.dirichlet(np.ones(tokens))
        weights[-3:] = 0.0  # padding that no decision sees
        weights /= weights.sum()
        positions = [[float(i), float(i % 4)] for i in range(tokens)]
        labels = [f"tok {i}" for i in range(tokens)]
        episode.append(AttentionStep(t, t % 3, f"a{t % 3}", labels, list(weights), positions))
    return episode


@pytest.mark.parametrize(("steps", "tokens"), [(3, 5), (100, 120), (41, 64)])
def test_pictures_stay_readable_for_long_episodes_and_many_tokens(tmp_path, steps, tokens):
    path = tmp_path / "attention.png"
    plot_attention(_episode(steps, tokens), "test", path)
    height, width, _ = mpimg.imread(io.BytesIO(path.read_bytes())).shape
    rows = min(steps, MAX_ROWS)
    assert height <= (0.28 * rows + 2.2) * 110 + 2 and width == 13 * 110  # at most MAX_ROWS rows tall
    assert MAX_COLUMNS < 120  # the many-token case really drops columns
    plot_scene(_episode(steps, tokens), "scene", tmp_path / "scene.png")
    assert (tmp_path / "scene.png").stat().st_size > 1000
