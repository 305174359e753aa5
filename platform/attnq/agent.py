"""A trained agent restored from a checkpoint: greedy acting and attention read-out, no Lightning."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from attnq.checkpoints import (
    NETWORK_PREFIXES,
    POLICY_CHECKPOINT,
    exported_prefix,
    load_checkpoint_file,
    resolve_run,
    task_from_checkpoint,
)
from attnq.config import TaskConfig
from attnq.errors import CheckpointError
from attnq.model.transformer_dqn import TransformerDQN, greedy_slate
from attnq.registry import PluginHost
from attnq.runtime import TaskRuntime, prepare_task


# Which of a checkpoint's networks to restore. "exported" is the one a run is evaluated by: the
# weight average when the run kept one (learner.weight_average_decay), else the online network.
@dataclass
class TrainedAgent:
    task: TaskConfig
    runtime: TaskRuntime
    q_network: TransformerDQN
    run_dir: Path
    checkpoint: Path
    env_steps: int
    wall_seconds: float  # training wall time up to this checkpoint (NaN for checkpoints that lack it)

    @torch.no_grad()
    def __call__(self, observations: np.ndarray) -> np.ndarray:
        """Greedy policy (the :class:`~attnq.domain.Policy` protocol)."""
        observations_BX = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.device)
        q_values = self.q_network(observations_BX).q_values_BA
        return (
            greedy_slate(q_values, self.q_network.encoder.action_mask(observations_BX), self.runtime.slate_size)
            .cpu()
            .numpy()
        )

    @property
    def device(self) -> torch.device:
        return next(self.q_network.parameters()).device

    @torch.no_grad()
    def query_attention(self, observation: np.ndarray, action: int | None = None) -> tuple[np.ndarray, int]:
        """Last layer's attention of the pooled query over the tokens, averaged over heads (and over
        the queries when ``model.queries`` learns several: the share of all the head reads).

        With ``model.head: per_token`` the Q-value of ``action`` comes from that action's own token,
        so its attention row is the one shown (what a recommended document was scored against).
        Returns ``(weights_T, cls_tokens)``; the first ``cls_tokens`` weights are the [CLS] tokens' own.
        """
        if self.task.model.torso != "transformer":
            raise CheckpointError(
                f"{self.checkpoint} uses model.torso={self.task.model.torso!r}, which has no attention to explain"
            )
        observations_BX = torch.as_tensor(np.asarray(observation, dtype=np.float32)[None], device=self.device)
        output = self.q_network(observations_BX, return_attention=True)
        if self.task.model.head == "per_token" and action is not None:
            queries = [int(action) + output.cls_tokens]
        elif output.cls_tokens:
            queries = list(range(output.cls_tokens))
        else:
            queries = [self.q_network.encoder(observations_BX).query_index]
        weights_HQT = output.attention[-1][0, :, queries, :]
        return weights_HQT.mean(dim=(0, 1)).cpu().numpy(), output.cls_tokens


def load_agent(
    run_or_checkpoint: str,
    host: PluginHost | None = None,
    device: str | torch.device | None = None,
    network: str = "exported",
    runtime: TaskRuntime | None = None,
) -> TrainedAgent:
    """Restore the greedy agent of a run folder or checkpoint, on CUDA when present unless told.

    A run that averaged its weights (``learner.weight_average_decay``) is restored with the averaged
    ones; ``network`` ("online", "averaged", "target") picks another of the checkpoint's networks.

    :param runtime: the runtime of the checkpoint's task when the caller has one (built otherwise)
    """
    if device in ("gpu", "cuda") and not torch.cuda.is_available():
        raise CheckpointError("--device gpu, but torch sees no CUDA GPU on this machine; fix: use --device cpu or auto")
    device = (
        "cuda"
        if device == "gpu"
        else device
        if device not in (None, "auto")
        else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    location = resolve_run(run_or_checkpoint)
    checkpoint = load_checkpoint_file(location.checkpoint)
    task = task_from_checkpoint(checkpoint, location.checkpoint)
    runtime = runtime or prepare_task(task, host)
    runtime.check_data_fingerprint(checkpoint.get("attnq", {}).get("data_fingerprint"), location.checkpoint)
    q_network = runtime.build_q_network()
    weights = checkpoint["state_dict"]
    prefix = exported_prefix(weights) if network == "exported" else NETWORK_PREFIXES[network]
    state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(
            f"{location.checkpoint} holds no {network} network (an exported {POLICY_CHECKPOINT} holds only the "
            "acting one); fix: load the run's checkpoints/last.ckpt for that network"
        )
    try:
        q_network.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{location.checkpoint}: weights do not fit the network its task describes ({str(exc).splitlines()[0]})"
        ) from None
    q_network.to(device).eval()
    counters = checkpoint.get("attnq", {})
    return TrainedAgent(
        task,
        runtime,
        q_network,
        location.run_dir,
        location.checkpoint,
        int(counters.get("env_steps", 0)),
        float(counters.get("wall_seconds", float("nan"))),
    )
