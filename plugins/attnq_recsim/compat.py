"""Everything RecSim NG 0.1.2 (its last release, 2022) needs to import on today's stack.

Nothing else in attnq touches these libraries' internals. Each :class:`Workaround` knows how to
tell, from the *unpatched* libraries, whether it is still needed (``still_needed`` runs in a fresh
interpreter so earlier patches cannot hide the answer); ``tests/test_recsim.py`` fails as soon as
one is not, so dead shims get deleted instead of piling up.

``apply()`` must run before the first ``import recsim_ng``; :mod:`attnq_recsim.simulation` calls
it. It is idempotent.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workaround:
    name: str
    why: str
    apply: Callable[[], None]
    probe: str  # Python source that prints "needed" when the unpatched stack still breaks

    def still_needed(self) -> bool:
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(self.probe)],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"probe for {self.name!r} crashed:\n{result.stderr[-2000:]}")
        return result.stdout.strip().endswith("needed")


def _use_legacy_keras() -> None:
    # TFP 0.25 and recsim_ng's tf.keras models are written for Keras 2, which now ships as tf-keras;
    # this switch must be set before TensorFlow is first imported.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter


def _numpy_inf_alias() -> None:
    # recsim_ng writes np.Inf, an alias NumPy 2 removed.
    if "Inf" not in np.__dict__:
        np.Inf = np.inf


def _dirichlet_multinomial_rvs() -> None:
    # edward2 0.0.2 wraps the ``rvs`` of every scipy.stats distribution at import; scipy's
    # dirichlet_multinomial has none. Give it a real sampler (Dirichlet, then multinomial).
    import scipy.stats

    distribution = scipy.stats.dirichlet_multinomial
    if hasattr(distribution, "rvs"):
        return

    def rvs(alpha, n, size=None, random_state=None):
        rng = np.random.default_rng(random_state)
        alpha = np.asarray(alpha, dtype=np.float64)
        shape = () if size is None else tuple(np.atleast_1d(size))
        probabilities = rng.dirichlet(alpha, size=shape or None)
        return rng.multinomial(n, probabilities)

    type(distribution).rvs = lambda self, *args, **kwargs: rvs(*args, **kwargs)


def _gym_box_accepts_tensor_shapes() -> None:
    # recsim_ng builds gym Boxes whose ``shape`` holds TensorFlow scalars; gym 0.26 asserts plain
    # ints (0.23 accepted them). Converting the entries to int changes nothing else.
    with contextlib.redirect_stderr(io.StringIO()):
        import gym.spaces  # gym prints an "unmaintained" notice on import; recsim_ng needs it anyway
    # float64 bounds on float32 Boxes: recsim_ng's specs, harmless
    warnings.filterwarnings("ignore", message=".*Box bound precision lowered.*")

    box = gym.spaces.Box
    if getattr(box.__init__, "_attnq_int_shapes", False):
        return
    original = box.__init__

    def __init__(self, low, high, shape=None, *args, **kwargs):
        if shape is not None:
            shape = tuple(int(dim) for dim in shape)
        original(self, low, high, shape, *args, **kwargs)

    __init__._attnq_int_shapes = True
    box.__init__ = __init__


WORKAROUNDS: tuple[Workaround, ...] = (
    Workaround(
        "tf-keras",
        "TensorFlow Probability 0.25 imports tf_keras (Keras 2); TF 2.16+ ships Keras 3",
        _use_legacy_keras,
        """
        import sys
        sys.modules["tf_keras"] = None  # as if tf-keras were not installed
        try:
            import tensorflow_probability as tfp
            tfp.distributions.Normal(0.0, 1.0)
            print("not needed")
        except (ImportError, ModuleNotFoundError):
            print("needed")
        """,
    ),
    Workaround(
        "numpy-Inf",
        "recsim_ng uses np.Inf, removed in NumPy 2.0",
        _numpy_inf_alias,
        """
        import numpy as np
        import recsim_ng, pathlib
        sources = [p for p in pathlib.Path(recsim_ng.__file__).parent.rglob("*.py") if not p.name.endswith("_test.py")]
        uses = any("np.Inf" in p.read_text() for p in sources)
        print("needed" if uses and "Inf" not in np.__dict__ and not hasattr(np, "Inf") else "not needed")
        """,
    ),
    Workaround(
        "scipy-dirichlet_multinomial-rvs",
        "edward2 0.0.2 wraps every scipy.stats rvs; dirichlet_multinomial has none",
        _dirichlet_multinomial_rvs,
        """
        import scipy.stats
        print("not needed" if hasattr(scipy.stats.dirichlet_multinomial, "rvs") else "needed")
        """,
    ),
    Workaround(
        "gym-box-tensor-shapes",
        "gym >= 0.26 rejects the TensorFlow scalars recsim_ng passes as Box shapes",
        _gym_box_accepts_tensor_shapes,
        """
        import os
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tensorflow as tf, gym.spaces
        try:
            gym.spaces.Box(-1.0, 1.0, shape=(tf.constant(2),))
            print("not needed")
        except AssertionError:
            print("needed")
        """,
    ),
)


@contextlib.contextmanager
def _stderr_silenced():
    """Swallow what is written to file descriptor 2: TensorFlow's C++ start-up lines (CUDA drivers
    missing, oneDNN, CPU features) are written before its log level applies, so only this stops them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            with contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _quiet_start() -> None:
    # the unmaintained gym package, which recsim_ng imports for its spaces, prints a deprecation
    # banner on import; TensorFlow logs AutoGraph and retracing notices about RecSim NG's functions
    import gym  # noqa: F401
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    tf.autograph.set_verbosity(0)


def apply() -> None:
    """Apply every workaround (before the first ``import recsim_ng``), without TensorFlow's and
    gym's start-up noise; an import that fails still raises, with its Python traceback."""
    with _stderr_silenced():
        for workaround in WORKAROUNDS:
            workaround.apply()
        _quiet_start()
