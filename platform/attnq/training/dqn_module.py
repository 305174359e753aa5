"""The DQN as a LightningModule: acting, the TD update, target sync, and resumable state.

Read top to bottom it is the DQN loop of Mnih et al. (2015) with Double-DQN targets: warm up the
replay buffer with random actions, then alternate "collect ``vector_steps_per_update`` vector
steps with epsilon-greedy" (inside :class:`ExperienceStream`) and "one gradient step on a replay
batch" (``training_step``). Env steps, not gradient steps, drive epsilon and hard target syncs.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections import deque
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from attnq.config import TaskConfig
from attnq.domain import admissible_at_random
from attnq.errors import TrainingDiverged
from attnq.learning.dqn_loss import DQNLoss, advantage_learning_target, dqn_loss, td_target
from attnq.learning.exploration import LinearEpsilon, epsilon_greedy
from attnq.learning.replay import NStepFolder, make_replay
from attnq.learning.target_network import TargetUpdater, WeightAverage
from attnq.model.transformer_dqn import TransformerDQN, greedy_slate
from attnq.runtime import TaskRuntime, prepare_task
from attnq.training.collector import ExperienceCollector

RECENT_EPISODES = 20

# The experience stream steps the module's own env, so it runs in the main process by design:
# Lightning's advice to add loader workers (printed on machines with many cores) does not apply.
warnings.filterwarnings("ignore", message=".*does not have many workers.*")


class ExperienceStream(IterableDataset):
    """Lightning's RL data pattern: each item is a replay batch drawn after fresh env steps.

    Runs in the main process (``num_workers=0``) because it steps the module's own vector env.
    """

    def __init__(self, module: DQNModule) -> None:
        self.module = module

    def __iter__(self):
        module = self.module
        while True:
            for _ in range(module.task.learner.vector_steps_per_update - 1):
                module.collect_step()
            # The last env step of each round stays in flight while Lightning runs training_step
            # on the yielded batch (finished when the next batch is requested): both cores work.
            module.start_collect_step()
            yield module.sample_batch()
            module.finish_collect_step()


class DQNModule(pl.LightningModule):
    def __init__(self, task: dict[str, Any], runtime: TaskRuntime | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"task": task})
        self.task = TaskConfig.model_validate(task)
        self.runtime = runtime or prepare_task(self.task)
        self.q_network = self.runtime.build_q_network()
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        replay_cfg, learner = self.task.replay, self.task.learner
        self.slate_size = self.runtime.slate_size
        action_shape = (self.slate_size,) if self.slate_size > 1 else ()
        self.replay = make_replay(
            replay_cfg.capacity,
            self.runtime.observation_shape,
            self.task.seed,
            replay_cfg.prioritized,
            replay_cfg.alpha,
            replay_cfg.beta_start,
            action_shape,
        )
        self.n_step_folder = NStepFolder(replay_cfg.n_step, learner.gamma, self.task.env.num_envs)
        self.epsilon = LinearEpsilon.from_config(self.task.exploration, self.task.trainer.max_env_steps)
        self.target_updater = TargetUpdater(learner.target_update, learner.target_update_interval, learner.tau)
        # With learner.weight_average_decay, a moving average of the online weights is what gets
        # evaluated, selected (keep_best) and loaded by `attnq evaluate`; the online network acts.
        self.weight_average = WeightAverage(learner.weight_average_decay) if learner.weight_average_decay else None
        self.averaged_network = copy.deepcopy(self.q_network).requires_grad_(False) if self.weight_average else None
        self.action_rng = np.random.default_rng(self.task.seed + 1)
        self.env_steps = 0
        self.episodes = 0
        self.wall_seconds_before_fit = 0.0  # training time of earlier (resumed) fits
        self.best_eval_return = -math.inf  # best validation_score of the periodic evaluations so far
        self.evaluation_seconds = 0.0  # wall time of this fit spent in evaluations during training
        self.fit_started = time.perf_counter()
        self.recent_episodes: deque[dict[str, float]] = deque(maxlen=RECENT_EPISODES)
        self.finished_since_log: list[dict[str, float]] = []
        self.collector: ExperienceCollector | None = None
        # Compiled lazily by torch on the first update; the weights stay the networks' own, so
        # checkpoints, target syncs and the weight average are the same with or without it.
        self.compiled_td_loss = torch.compile(self.td_loss, dynamic=False) if self.task.trainer.compile else None

    # ----- acting -------------------------------------------------------------------------------
    @property
    def evaluation_network(self) -> TransformerDQN:
        """The network whose greedy policy is evaluated: the weight average when there is one."""
        return self.averaged_network if self.averaged_network is not None else self.q_network

    @torch.no_grad()
    def greedy_actions(self, observations: np.ndarray, network: TransformerDQN | None = None) -> np.ndarray:
        network = network if network is not None else self.q_network
        observations_BX = torch.as_tensor(observations, dtype=torch.float32, device=self.device)
        q_values = network(observations_BX).q_values_BA
        action_mask = network.encoder.action_mask(observations_BX)
        return greedy_slate(q_values, action_mask, self.slate_size).cpu().numpy()

    def random_actions(self, observations: np.ndarray) -> np.ndarray:
        action_mask = self.q_network.encoder.action_mask(torch.as_tensor(observations, dtype=torch.float32))
        if action_mask is None and self.slate_size == 1:
            return self.action_rng.integers(0, self.runtime.num_actions, size=len(observations))
        if action_mask is None:
            admissible_BA = np.ones((len(observations), self.runtime.num_actions), dtype=bool)
        else:
            admissible_BA = action_mask.cpu().numpy()
        return admissible_at_random(self.action_rng, admissible_BA, self.slate_size)

    def epsilon_greedy_actions(self, observations: np.ndarray) -> np.ndarray:
        return epsilon_greedy(
            self.greedy_actions(observations),
            self.epsilon(self.env_steps),
            self.action_rng,
            self.random_actions(observations),
        )

    # ----- experience ---------------------------------------------------------------------------
    def collect_step(self, random: bool = False) -> None:
        self.start_collect_step(random)
        self.finish_collect_step()

    def start_collect_step(self, random: bool = False) -> None:
        assert self.collector is not None
        if self.budget_left() == 0:
            return  # the budget is spent: the remaining updates learn from the replay alone
        self.collector.start_step(self.random_actions if random else self.epsilon_greedy_actions)

    def finish_collect_step(self) -> None:
        assert self.collector is not None
        if self.collector.pending_actions is None:
            return
        # the run's last vector step keeps only the sub-envs its budget has room for
        keep = min(self.collector.num_envs, self.budget_left())
        finished = self.collector.finish_step(keep)
        self.env_steps += keep
        self.episodes += len(finished)
        self.recent_episodes.extend(finished)
        self.finished_since_log.extend(finished)

    def budget_left(self) -> int:
        """Env steps the run may still take: it ends exactly at ``trainer.max_env_steps``, except that
        the learner gets at least one stored transition however small the budget."""
        if len(self.replay) == 0:
            return self.collector.num_envs if self.collector is not None else 0
        return max(0, self.task.trainer.max_env_steps - self.env_steps)

    def sample_batch(self) -> dict[str, torch.Tensor]:
        progress = self.env_steps / self.task.trainer.max_env_steps
        sample = self.replay.sample(self.task.replay.batch_size, progress)
        return {name: torch.as_tensor(value) for name, value in sample._asdict().items()}

    def updates_needed(self, start_env_steps: int = 0) -> int:
        """Gradient steps that take a fit starting at ``start_env_steps`` (a resumed run's checkpoint)
        to ``max_env_steps``; Lightning's ``max_steps`` is the checkpoint's updates plus these."""
        per_update = self.task.env.num_envs * self.task.learner.vector_steps_per_update
        remaining = max(self.task.trainer.max_env_steps - max(self.warmup_env_steps(), start_env_steps), 0)
        return max(1, math.ceil(remaining / per_update))

    def warmup_env_steps(self) -> int:
        """Random-action steps before learning; a run shorter than ``learning_starts`` (a smoke test)
        stops at its own budget instead of collecting the whole warm-up."""
        return min(self.task.learner.learning_starts, self.task.trainer.max_env_steps)

    def on_fit_start(self) -> None:
        self.fit_started = time.perf_counter()
        # Each (re)start seeds the envs differently so a resumed run does not replay old episodes.
        self.collector = ExperienceCollector(
            self.runtime.make_vector_env(), self.runtime.reward_adapter(), self.replay, self.n_step_folder
        )
        self.collector.reset(seed=self.task.seed * 1_000_003 + self.env_steps)
        while (self.env_steps < self.warmup_env_steps() and self.budget_left() > 0) or len(self.replay) == 0:
            self.collect_step(random=True)

    def on_fit_end(self) -> None:
        if self.collector is not None:
            self.collector.close()
            self.collector = None

    def train_dataloader(self) -> DataLoader:
        return DataLoader(ExperienceStream(self), batch_size=None, num_workers=0)

    # ----- learning -----------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        result = self.compiled_td_loss(batch) if self.compiled_td_loss is not None else self.td_loss(batch)
        self.replay.update_priorities(batch["indices"].cpu().numpy(), result.td_errors.cpu().numpy())
        self._log_training(result.loss, result.q_taken)
        return result.loss

    def td_loss(self, batch: dict[str, torch.Tensor]) -> DQNLoss:
        """The TD loss of one replay batch: pure tensor code, so ``trainer.compile`` can compile it."""
        learner = self.task.learner
        q_values_BA = self.q_network(batch["observations"]).q_values_BA
        if learner.gamma == 0.0:
            # Nothing is bootstrapped, so the target is the reward; this skips two forward passes.
            target_B = batch["rewards"]
        else:
            with torch.no_grad():
                observations, next_observations = batch["observations"], batch["next_observations"]
                if learner.advantage_learning:
                    # One target-network pass over both states; advantage learning needs Q_target(s, .).
                    q_target_BA, next_q_target_BA = self.target_network(
                        torch.cat([observations, next_observations])
                    ).q_values_BA.chunk(2)
                else:
                    next_q_target_BA = self.target_network(next_observations).q_values_BA
                next_q_online_BA = self.q_network(next_observations).q_values_BA if learner.double_dqn else None
                target_B = td_target(
                    batch["rewards"],
                    batch["discounts"],
                    next_q_target_BA,
                    next_q_online_BA,
                    self.q_network.encoder.action_mask(next_observations),
                    self.slate_size,
                )
                if learner.advantage_learning:
                    target_B = advantage_learning_target(
                        target_B,
                        q_target_BA,
                        batch["actions"],
                        self.q_network.encoder.action_mask(observations),
                        learner.advantage_learning,
                    )
        return dqn_loss(q_values_BA, batch["actions"], target_B, batch["weights"], learner.huber_delta)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.target_updater.step(self.target_network, self.q_network, self.env_steps)
        if self.weight_average is not None:
            self.weight_average.step(self.averaged_network, self.q_network, self.global_step)

    def configure_optimizers(self) -> Any:
        learner = self.task.learner
        optimizer = self.make_optimizer()
        if learner.lr_end is None:
            return optimizer
        # Stepped once per update; Lightning checkpoints its state, so a resumed run stays on schedule.
        total_updates, final_factor = self.updates_needed(), learner.lr_end / learner.lr
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda update: 1.0 + (final_factor - 1.0) * min(update / total_updates, 1.0)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam, or AdamW (Loshchilov & Hutter 2019) on the weight matrices and embeddings when
        ``learner.weight_decay`` is set; biases and norm gains are never decayed."""
        learner = self.task.learner
        if not learner.weight_decay:  # plain Adam keeps runs made before the option bit for bit
            return torch.optim.Adam(self.q_network.parameters(), lr=learner.lr)
        parameters = list(self.q_network.parameters())
        groups = [
            {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": learner.weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=learner.lr)

    def _log_training(self, loss: torch.Tensor, q_taken: torch.Tensor) -> None:
        # Only on the updates Lightning writes (it writes when the count of finished updates, this one
        # included, is a multiple of log_every_n_steps): values logged in between would be dropped,
        # and the self.log calls cost about a tenth of a small update. Episodes that ended in between
        # stay in finished_since_log, so the rollout means cover all of them.
        if (self.global_step + 1) % self.task.trainer.log_every_updates != 0:
            return
        if not torch.isfinite(loss):  # checked where it is logged anyway, so no extra device sync per update
            raise TrainingDiverged(
                f"task {self.task.name!r}: the TD loss became {loss.item()} at env step {self.env_steps:,} "
                f"(learner.lr = {self.task.learner.lr}); fix: lower learner.lr or "
                "learner.max_grad_norm, or check the domain's rewards for inf/NaN"
            )
        self.log("train/loss", loss, prog_bar=False)
        self.log("train/q_mean", q_taken.mean())
        self.log("train/epsilon", self.epsilon(self.env_steps))
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        self.log("train/env_steps", float(self.env_steps))
        self.log("train/wall_seconds", self.wall_seconds())
        if self.finished_since_log:
            for name in self.finished_since_log[0]:
                values = [episode[name] for episode in self.finished_since_log if name in episode]
                self.log(f"rollout/{name}", float(np.mean(values)), batch_size=len(values))
            self.log("rollout/episodes", float(self.episodes))
            self.finished_since_log.clear()

    def wall_seconds(self) -> float:
        """Training wall time, counting every fit of a resumed run (learning curves use it)."""
        return self.wall_seconds_before_fit + time.perf_counter() - self.fit_started

    def recent_mean(self, metric: str = "return") -> float:
        values = [episode[metric] for episode in self.recent_episodes if metric in episode]
        return float(np.mean(values)) if values else float("nan")

    # ----- resumable state ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        replay_state = {
            k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in self.replay.state_dict().items()
        }
        checkpoint["attnq"] = {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "wall_seconds": self.wall_seconds(),
            "recent_episodes": list(self.recent_episodes),
            "replay": replay_state,
            "target_last_sync_step": self.target_updater.last_sync_step,
            "action_rng": self.action_rng.bit_generator.state,
            "best_eval_return": self.best_eval_return,
            "data_fingerprint": self.runtime.data_fingerprint(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["attnq"]
        self.env_steps, self.episodes = int(state["env_steps"]), int(state["episodes"])
        self.wall_seconds_before_fit = float(state.get("wall_seconds", 0.0))
        self.recent_episodes.extend(state["recent_episodes"])
        self.replay.load_state_dict(
            {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state["replay"].items()}
        )
        self.target_updater.last_sync_step = int(state["target_last_sync_step"])
        self.action_rng.bit_generator.state = state["action_rng"]
        self.best_eval_return = float(state.get("best_eval_return", -math.inf))
