"""The one experiments pipeline behind ``attnq report``, ``attnq bench`` and ``attnq tune``.

plan (tasks x torsos x seeds, or sweep points) -> jobs (train to the budget, evaluate, baselines)
-> an executor (serial in this process, or Ray across cores, GPUs and nodes) -> records read back
from the runs folder -> tables and pages (:mod:`attnq.reporting`).

The runs folder is the one source of truth: each run keeps a small state file beside its
checkpoints, so planning, resuming and progress never load a checkpoint, and an interrupted
pipeline picks up where it stopped whichever executor ran it.
"""
