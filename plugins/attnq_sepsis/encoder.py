"""Clinical features -> one token per feature, so attention maps read as "lactate", "SOFA", "MeanBP".

Token j is ``bias_j + value_j * weight_j``: the numerical-feature tokenizer of FT-Transformer
(Gorishniy et al. 2021). The bias is the feature's identity and each feature moves along its own
direction as its value changes. (A value MLP shared by all features plus an identity embedding,
the earlier design, fitted the optimal Q-values less closely: docs/experiments/2026-12-01-sepsis.md.)
A learned [CLS] token (``model.pool: cls``) pools the tokens.
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
        self.feature_bias = nn.Parameter(torch.randn(NUM_FEATURES, d_model) * 0.5)
        self.feature_weight = nn.Parameter(torch.randn(NUM_FEATURES, d_model) * 0.5)

    def forward(self, observations_BX: torch.Tensor) -> Tokens:
        if observations_BX.dim() != 2 or observations_BX.shape[1] != OBSERVATION_SIZE:
            raise ValueError(
                f"expected ICU-Sepsis observations [B, {OBSERVATION_SIZE}], got {list(observations_BX.shape)}"
            )
        values_BT1 = observations_BX[:, :NUM_FEATURES].unsqueeze(-1)
        embeddings_BTD = self.feature_bias + values_BT1 * self.feature_weight
        mask_BT = torch.ones(values_BT1.shape[:2], dtype=torch.bool, device=observations_BX.device)
        return Tokens(embeddings_BTD, mask_BT)

    def action_mask(self, observations_BX: torch.Tensor) -> torch.Tensor:
        return observations_BX[:, ADMISSIBLE_SLICE] > 0.5

    def token_labels(self, observation: np.ndarray) -> list[str]:
        # the package stores each state as a cluster centre of standardised features, not raw units
        return [f"{name} (std.) {value:+.2f}" for name, value in zip(FEATURE_NAMES, observation[:NUM_FEATURES])]
