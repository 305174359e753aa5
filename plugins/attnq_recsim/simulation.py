"""RecSim NG's interest-evolution ecosystem, stepped one slate at a time by an outside agent.

The simulation is the library's own story (``recommendation_simulation.recs_story``) with the
application's own entities: ``InterestEvolutionUser``, a frozen ``StaticCorpus`` of documents and
``ConsumedTimeAsRewardMetrics``. Only the recommender differs: RecSim NG's collaborative-filtering
recommender keeps its history state, but its slate is read from a ``tf.Variable`` that the agent
writes before every step. The whole batch of users advances in one compiled ``network.step``.

This module imports TensorFlow; attnq imports it only when a recommendation env is built.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from attnq_recsim import compat

compat.apply()

import tensorflow as tf  # noqa: E402  (after the compatibility shims)
from recsim_ng.applications.recsys_partially_observable_rl import corpus as corpus_lib  # noqa: E402
from recsim_ng.applications.recsys_partially_observable_rl import interest_evolution_simulation  # noqa: E402
from recsim_ng.applications.recsys_partially_observable_rl import metrics as metrics_lib  # noqa: E402
from recsim_ng.applications.recsys_partially_observable_rl import recommender as recommender_lib  # noqa: E402
from recsim_ng.applications.recsys_partially_observable_rl import user as user_lib  # noqa: E402
from recsim_ng.core import network as network_lib  # noqa: E402
from recsim_ng.core import value as value_lib  # noqa: E402
from recsim_ng.lib.tensorflow import entity as entity_lib  # noqa: E402
from recsim_ng.stories import recommendation_simulation  # noqa: E402

# RecSim NG's simulator is small and eager-heavy; a thread per op only adds contention with the
# learner on a small machine.
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)


@dataclass(frozen=True)
class EcosystemConfig:
    """The application's ``create_interest_evolution_simulation_network`` parameters."""

    num_users: int
    num_topics: int = 2
    num_docs: int = 100
    slate_size: int = 2
    history_length: int = 15
    corpus_seed: int = 0

    def as_recsim_config(self) -> dict[str, int]:
        return {
            "num_users": self.num_users,
            "num_topics": self.num_topics,
            "num_docs": self.num_docs,
            "slate_size": self.slate_size,
            "history_length": self.history_length,
        }


def frozen_corpus(config: EcosystemConfig) -> value_lib.Value:
    """The application's frozen corpus (``freeze_corpus=True``), drawn from its own seed so that
    every env of a task, training and evaluation, and the baselines share the same documents."""
    tf.random.set_seed(config.corpus_seed)
    return corpus_lib.CorpusWithTopicAndQuality(config.as_recsim_config()).initial_state()


class _NoScoringModel:
    """Stands in for the collaborative-filtering network: the agent scores documents instead."""

    def __init__(self, *args) -> None:
        pass

    def __call__(self, *args) -> None:
        return None


class AgentSlateRecommender(recommender_lib.CollabFilteringRecommender):
    """RecSim NG's recommender (and its history state) whose slate is the agent's choice."""

    def __init__(self, config, agent_slate: tf.Variable) -> None:
        super().__init__(config, model_ctor=_NoScoringModel)
        self._agent_slate = agent_slate

    def slate_docs(self, previous_state, user_obs, available_docs):
        del previous_state, user_obs
        doc_indices = tf.identity(self._agent_slate)
        slate = available_docs.map(lambda field: tf.gather(field, doc_indices))
        return slate.union(value_lib.Value(doc_ranks=doc_indices))


@dataclass(frozen=True)
class StepResult:
    """One simulated step of every user, as numpy arrays."""

    choice: np.ndarray  # [N] slot in the slate the user consumed, or slate_size for no click
    consumed_time: np.ndarray  # [N] RecSim NG's response (negative when nothing was consumed)
    reward: np.ndarray  # [N] consumed time clipped at 0: ConsumedTimeAsRewardMetrics' reward for this response
    interest: np.ndarray  # [N, topics] the users' hidden interest this step responded from


# Seeds whose graphs an ecosystem keeps: an evaluation's batches, validation's, a baseline's search.
KEPT_SEEDS = 32


class InterestEvolutionEcosystem:
    """The network for ``num_users`` users; ``start`` and ``advance`` each take one slate per user."""

    def __init__(self, config: EcosystemConfig) -> None:
        self.config = config
        recsim_config = config.as_recsim_config()
        corpus_state = frozen_corpus(config)
        self.documents = {name: tf.convert_to_tensor(field).numpy() for name, field in corpus_state.as_dict.items()}
        self.agent_slate = tf.Variable(tf.zeros((config.num_users, config.slate_size), tf.int32), trainable=False)
        variables = recommendation_simulation.recs_story(
            recsim_config,
            user_lib.InterestEvolutionUser,
            lambda c: corpus_lib.StaticCorpus(c, corpus_state),
            lambda c: AgentSlateRecommender(c, self.agent_slate),
            metrics_lib.ConsumedTimeAsRewardMetrics,
        )
        self.network = network_lib.Network(variables=variables)
        self._names = [variable.name for variable in self.network.variables]
        self._initial_step, self._step = self._graphs()
        self._graphs_of_seed: dict[int, tuple] = {}
        self._packed = None

    def _graphs(self) -> tuple:
        """The network's first step and step as new graphs. Their random ops take their seeds from
        the global seed when first traced; ``tf.random.set_seed`` then restarts those seeds' streams.
        So a seed needs graphs traced under it (or it draws the users of another seed), and graphs
        kept for a seed draw its users again without tracing again."""
        initial_step = tf.function(lambda: self._pack(self.network.initial_step()))
        step = tf.function(lambda packed: self._pack(self.network.step(self._unpack(packed))))
        return initial_step, step

    def _pack(self, network_value) -> list[dict]:
        return [network_value[name].as_dict for name in self._names]

    def _unpack(self, packed) -> dict[str, value_lib.Value]:
        return {name: value_lib.Value(**fields) for name, fields in zip(self._names, packed)}

    def start(self, slates: np.ndarray, seed: int | None, keep: bool = True) -> StepResult:
        """New users (drawn from ``seed`` when given) respond to their first slates; ``keep`` keeps
        the seed's graphs for its next start."""
        if seed is not None:
            tf.random.set_seed(seed)
            graphs = self._graphs_of_seed.get(seed) or self._graphs()
            if keep and seed not in self._graphs_of_seed:
                if len(self._graphs_of_seed) >= KEPT_SEEDS:
                    del self._graphs_of_seed[next(iter(self._graphs_of_seed))]  # the oldest
                self._graphs_of_seed[seed] = graphs
            self._initial_step, self._step = graphs
        self.agent_slate.assign(np.asarray(slates, dtype=np.int32))
        self._packed = self._initial_step()
        return self._result()

    def advance(self, slates: np.ndarray) -> StepResult:
        """Every user's state evolves from the last response; then they respond to ``slates``."""
        if self._packed is None:
            raise RuntimeError("call start() before advance()")
        self.agent_slate.assign(np.asarray(slates, dtype=np.int32))
        self._packed = self._step(self._packed)
        return self._result()

    def network_value(self) -> dict[str, value_lib.Value]:
        """The current value of every variable of the network (tests compare against it)."""
        return self._unpack(self._packed)

    def _result(self) -> StepResult:
        value = self.network_value()
        response = value["user response"]
        return StepResult(
            choice=np.asarray(response.get("choice"), dtype=np.int64),
            consumed_time=np.asarray(response.get("consumed_time"), dtype=np.float32),
            # The metrics entity records a response one step later (it reads user_response.previous),
            # so the step's own reward is its formula applied to this response.
            reward=np.maximum(np.asarray(response.get("consumed_time"), dtype=np.float32), 0.0),
            interest=np.asarray(value["user state"].get("interest.state"), dtype=np.float32),
        )


@contextlib.contextmanager
def python_random_seeded(seed: int) -> Iterator[None]:
    """Python's global ``random`` seeded for the block, its state put back after. tf-keras draws the
    seeds of unseeded initializers from it, and it starts from the OS: without this, the same seed
    trained recommenders that scored 34.7 to 73.7 on the same evaluation episodes in fresh processes."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


class TrainedCollabFiltering:
    """RecSim NG's ``CollabFilteringRecommender`` after its own training loop; ``slates`` asks it
    (through its public ``slate_docs``) for slates given the users' consumed histories."""

    def __init__(self, config: EcosystemConfig, user_steps: int, horizon: int, learning_rate: float, seed: int) -> None:
        self.config = config
        recsim_config = config.as_recsim_config()
        corpus_state = frozen_corpus(config)
        self.available_docs = corpus_state.map(tf.identity)
        recommenders: list[recommender_lib.CollabFilteringRecommender] = []

        def make_recommender(c):
            recommenders.append(recommender_lib.CollabFilteringRecommender(c))
            return recommenders[-1]

        # One training step simulates every user for a whole horizon (the library's demo optimises
        # cumulative_reward the same way, with 1,000 users x 100 steps x 100 training steps).
        self.training_steps = max(1, -(-user_steps // (config.num_users * horizon)))
        self.user_steps = self.training_steps * config.num_users * horizon
        with python_random_seeded(seed):
            tf.random.set_seed(seed)
            simulation_variables, trainable = entity_lib.story_with_trainable_variables(
                lambda: recommendation_simulation.recs_story(
                    recsim_config,
                    user_lib.InterestEvolutionUser,
                    lambda c: corpus_lib.StaticCorpus(c, corpus_state),
                    make_recommender,
                    metrics_lib.ConsumedTimeAsRewardMetrics,
                )
            )
            self.recommender = recommenders[-1]
            interest_evolution_simulation.run_simulation(
                num_training_steps=self.training_steps,
                horizon=horizon,
                global_batch=config.num_users,
                learning_rate=learning_rate,
                simulation_variables=simulation_variables,
                trainable_variables=trainable["Recommender"],
                metric_to_optimize="cumulative_reward",
            )
        tf.random.set_seed(seed)  # its slate sampler draws from TensorFlow's global stream

    def slates(self, doc_id_history: np.ndarray, consumed_time_history: np.ndarray) -> np.ndarray:
        """Slates ``[num_users, slate_size]`` of corpus indices for histories of library doc ids
        (corpus index + 1; 0 = nothing) and consumed times, oldest first."""
        state = value_lib.Value(
            **{
                "doc_history.state": tf.constant(doc_id_history, tf.int32),
                "ctime_history.state": tf.constant(consumed_time_history, tf.float32),
            }
        )
        slate = self.recommender.slate_docs(state, value_lib.Value(), self.available_docs)
        return tf.convert_to_tensor(slate.get("doc_ranks")).numpy().astype(np.int64)
