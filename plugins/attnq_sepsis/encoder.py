"""Clinical features -> one token per feature, so attention maps read as "lactate", "SOFA", "MeanBP".

Each token is a learned feature-identity embedding plus an embedding of the feature's value (a small
MLP shared by all features). A learned [CLS] token (``model.pool: cls``) pools them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attnq.domain import StateEncoder, Tokens
from attnq_sepsis.environment import ADMISSIBLE_SLICE, OBSERVATION_SIZE
from attnq_sepsis.features import FEATURE_NAMES, NUM_FEATURES


class ClinicalFeatureEncoder(StateEncoder):
    def __init__(self, d_model: int) -> None:
        super().__init__(d_model)
        self.num_tokens = NUM_FEATURES
        self.feature_identity = nn.Embedding(NUM_FEATURES, d_model)
        self.value_embedding = nn.Sequential(nn.Linear(1, d_model), nn.GELU(), nn.Linear(d_model, d_model))

    def forward(self, observations_BX: torch.Tensor) -> Tokens:
        if observations_BX.dim() != 2 or observations_BX.shape[1] != OBSERVATION_SIZE:
            raise ValueError(f"expected ICU-Sepsis observations [B, {OBSERVATION_SIZE}], got {list(observations_BX.shape)}")
        values_BT1 = observations_BX[:, :NUM_FEATURES].unsqueeze(-1)
        embeddings_BTD = self.value_embedding(values_BT1) + self.feature_identity.weight
        mask_BT = torch.ones(values_BT1.shape[:2], dtype=torch.bool, device=observations_BX.device)
        return Tokens(embeddings_BTD, mask_BT)

    def action_mask(self, observations_BX: torch.Tensor) -> torch.Tensor:
        return observations_BX[:, ADMISSIBLE_SLICE] > 0.5

    def token_labels(self, observation: np.ndarray) -> list[str]:
        return [f"{name} {value:+.2f}" for name, value in zip(FEATURE_NAMES, observation[:NUM_FEATURES])]
