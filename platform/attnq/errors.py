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
