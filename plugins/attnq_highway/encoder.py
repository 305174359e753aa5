"""Kinematics observation -> one token per vehicle, the ego vehicle first.

highway-env's Kinematics observation is a ``[vehicles, features]`` array whose first feature is
``presence``; rows of absent vehicles are zero. Each present vehicle becomes a token: a linear
embedding of its remaining (already normalised) features plus a learned ego/other type embedding.
The ego token is the query token, as in ego-attention (Leurent & Mercat 2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from attnq.domain import StateEncoder, Tokens

LANE_WIDTH_M = 4.0  # highway-env's AbstractLane.DEFAULT_WIDTH


@dataclass(frozen=True)
class KinematicsLayout:
    """What the env's observation type says about its rows, read from the env itself."""

    features: tuple[str, ...]
    features_range: dict[str, tuple[float, float]]
    normalized: bool
    absolute: bool
    vehicles: int
    # Lane changes among the ego's actions mean a multi-lane road whose lanes run along x (highway),
    # so a vehicle's lateral offset names its lane; without them (intersection) it does not.
    lane_changes: bool

    @classmethod
    def from_env(cls, env) -> KinematicsLayout:
        observation_type = env.unwrapped.observation_type
        features = tuple(observation_type.features)
        if not features or features[0] != "presence":
            raise ValueError(
                f"the highway encoder needs 'presence' as the first Kinematics feature, got {list(features)}"
            )
        ranges = {k: (float(v[0]), float(v[1])) for k, v in (observation_type.features_range or {}).items()}
        actions = getattr(env.unwrapped.action_type, "actions_indexes", {})
        return cls(
            features,
            ranges,
            bool(observation_type.normalize),
            bool(observation_type.absolute),
            int(observation_type.vehicles_count),
            lane_changes="LANE_LEFT" in actions,
        )

    def relative_positions(self, observation: np.ndarray) -> list[tuple[int, float, float] | None]:
        """Per non-ego slot: (slot, dx, dy) in metres relative to ego, or None when the slot is empty."""
        ego = observation[0]
        positions: list[tuple[int, float, float] | None] = []
        for slot, row in enumerate(observation[1:], start=1):
            if row[0] <= 0.5:
                positions.append(None)
                continue
            dx, dy = self.physical(row, "x"), self.physical(row, "y")
            if self.absolute:  # world coordinates: make them relative to ego
                dx, dy = dx - self.physical(ego, "x"), dy - self.physical(ego, "y")
            positions.append((slot, dx, dy))
        return positions

    def physical(self, row: np.ndarray, feature: str) -> float:
        """Undo highway-env's [-1, 1] normalisation of one feature."""
        value = float(row[self.features.index(feature)])
        if self.normalized and feature in self.features_range:
            low, high = self.features_range[feature]
            value = low + (value + 1.0) * (high - low) / 2.0
        return value


class KinematicsEncoder(StateEncoder):
    def __init__(self, layout: KinematicsLayout, d_model: int) -> None:
        super().__init__(d_model)
        self.layout = layout
        self.num_tokens = layout.vehicles
        self.vehicle_embedding = nn.Sequential(
            nn.Linear(len(layout.features) - 1, d_model), nn.ReLU(), nn.Linear(d_model, d_model)
        )
        self.type_embedding = nn.Embedding(2, d_model)  # 0 = ego, 1 = other vehicle
        self.register_buffer("type_ids", torch.tensor([0] + [1] * (layout.vehicles - 1)), persistent=False)

    def forward(self, observations_BX: torch.Tensor) -> Tokens:
        if observations_BX.dim() != 3 or tuple(observations_BX.shape[1:]) != (
            self.num_tokens,
            len(self.layout.features),
        ):
            raise ValueError(
                f"expected Kinematics observations [B, {self.num_tokens}, {len(self.layout.features)}], "
                f"got {list(observations_BX.shape)}"
            )
        presence_BT = observations_BX[..., 0] > 0.5
        presence_BT[:, 0] = True  # the ego vehicle is always there
        embeddings_BTD = self.vehicle_embedding(observations_BX[..., 1:]) + self.type_embedding(self.type_ids)
        return Tokens(embeddings_BTD, presence_BT, query_index=0)

    def token_positions(self, observation: np.ndarray) -> list[tuple[float, float] | None]:
        """Metres ahead (x) and to the side (y) of the ego vehicle; ego at the origin."""
        others = [None if p is None else (p[1], p[2]) for p in self.layout.relative_positions(observation)]
        return [(0.0, 0.0), *others]

    def token_labels(self, observation: np.ndarray) -> list[str]:
        layout = self.layout
        labels = [f"ego: {layout.physical(observation[0], 'vx'):.0f} m/s" if "vx" in layout.features else "ego"]
        for k, position in enumerate(layout.relative_positions(observation), start=1):
            if position is None:
                labels.append(f"slot {k}: empty")
            elif layout.lane_changes:
                labels.append(f"car {k}: {position[1]:+.0f} m, lane {round(position[2] / LANE_WIDTH_M):+d}")
            else:
                labels.append(f"car {k}: {position[1]:+.0f} m, {position[2]:+.0f} m")
        return labels
