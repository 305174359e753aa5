"""User-facing errors.

Anything a user can fix (a bad task file, an unknown plugin, a checkpoint of the wrong task) raises
``AttnqError``; the CLI prints its message without a traceback and exits non-zero. Programming
errors keep their ordinary exception types so their tracebacks stay visible.
"""

from __future__ import annotations


class AttnqError(Exception):
    """An error caused by user input, with a message that says what to fix."""


class TaskFileError(AttnqError):
    """A task file is missing, unreadable or invalid."""


class PluginError(AttnqError):
    """A domain plugin or task could not be found or is inconsistent."""


class CheckpointError(AttnqError):
    """A run folder or checkpoint is missing, corrupt or belongs to another task."""


class TrainingDiverged(AttnqError):
    """The loss became infinite or NaN: training stops rather than write a broken agent."""


class RunInterrupted(Exception):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint; it can be resumed.

    Not an :class:`AttnqError`: the command exits with 128 + the signal's number, as shells expect.
    """

    def __init__(self, run_dir, signum: int, env_steps: int, max_env_steps: int) -> None:
        import signal

        self.run_dir, self.signum, self.env_steps, self.max_env_steps = run_dir, signum, env_steps, max_env_steps
        self.signal_name = signal.Signals(signum).name
        super().__init__(
            f"{self.signal_name}: stopped {run_dir} at {env_steps:,} of {max_env_steps:,} env steps "
            "(checkpoint written)"
        )

    def __reduce__(self):  # rebuilt from its fields when it crosses from a Ray worker to the driver
        return type(self), (self.run_dir, self.signum, self.env_steps, self.max_env_steps)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class SearchInterrupted(Exception):
    """``attnq tune`` stopped on SIGINT or SIGTERM; Tune saved the search, which resumes when run again.

    Not an :class:`AttnqError`, for the same reason as :class:`RunInterrupted`.
    """

    run_dir = None  # a search has no single run to resume; the same command resumes it

    def __init__(self, out_dir, signum: int) -> None:
        import signal

        self.out_dir, self.signum = out_dir, signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(
            f"{self.signal_name}: stopped the search in {out_dir}; each unfinished trial resumes from its run "
            "folder's last checkpoint"
        )

    @property
    def exit_status(self) -> int:
        return 128 + self.signum
