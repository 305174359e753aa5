"""Candidate documents and the user's consumed history -> tokens; the documents come first.

Each token = a projection of its numeric columns (topic features, quality when observed, consumed
time) + a learned embedding of the document's corpus index (``document_identity``) + a segment embedding (candidate or
history) + for history tokens a learned position (how recent). With ``model.head: per_token`` the
first ``num_docs`` outputs are the documents' Q-values (SlateQ's item values), so a document's
attention row shows which past consumption it was scored against. With ``attend_to: history`` the
history is the only context (besides the [CLS] token): documents do not attend to each other.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attnq.domain import StateEncoder, Tokens
from attnq_recsim.options import TokenLayout

CANDIDATE_SEGMENT, HISTORY_SEGMENT = 0, 1


class SlateEncoder(StateEncoder):
    def __init__(
        self,
        layout: TokenLayout,
        doc_is_trashy: np.ndarray,
        d_model: int,
        document_identity: bool = True,
        attend_to_history: bool = False,
    ) -> None:
        super().__init__(d_model)
        self.layout = layout
        self.num_tokens = layout.num_rows
        self.doc_is_trashy = np.asarray(doc_is_trashy, dtype=bool)
        numeric_columns = layout.num_topics + 2  # features, quality, consumed time
        self.numeric = nn.Linear(numeric_columns, d_model)
        self.document = nn.Embedding(layout.num_docs, d_model) if document_identity else None
        self.segment = nn.Embedding(2, d_model)
        self.recency = nn.Embedding(layout.history_length, d_model)
        self.context = layout.history_rows if attend_to_history else None

    def forward(self, observations_BX: torch.Tensor) -> Tokens:
        layout = self.layout
        if observations_BX.dim() != 3 or tuple(observations_BX.shape[1:]) != (layout.num_rows, layout.num_columns):
            raise ValueError(
                f"expected RecSim observations [B, {layout.num_rows}, {layout.num_columns}], got "
                f"{list(observations_BX.shape)}"
            )
        numeric_BTC = observations_BX[..., layout.FEATURES : layout.doc_index]
        doc_BT = observations_BX[..., layout.doc_index].long().clamp(0, layout.num_docs - 1)
        segment_BT = observations_BX[..., layout.IS_HISTORY].long()
        embeddings_BTD = self.numeric(numeric_BTC) + self.segment(segment_BT)
        if self.document is not None:
            embeddings_BTD = embeddings_BTD + self.document(doc_BT)
        history_BHD = embeddings_BTD[:, layout.history_rows] + self.recency.weight
        embeddings_BTD = torch.cat([embeddings_BTD[:, : layout.num_docs], history_BHD], dim=1)
        return Tokens(embeddings_BTD, observations_BX[..., layout.PRESENT] > 0.5, context=self.context)

    def token_labels(self, observation: np.ndarray) -> list[str]:
        layout = self.layout
        labels = [f"doc {d} ({'trashy' if self.doc_is_trashy[d] else 'nutritious'})" for d in range(layout.num_docs)]
        for age, row in zip(range(layout.history_length, 0, -1), observation[layout.history_rows]):
            if row[layout.PRESENT] < 0.5:
                labels.append(f"seen -{age}: (none)")
                continue
            doc = int(row[layout.doc_index])
            labels.append(
                f"seen -{age}: doc {doc} {'T' if self.doc_is_trashy[doc] else 'N'}, {row[layout.consumed_time]:.2f}"
            )
        return labels
