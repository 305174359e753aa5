"""ASHA whose rung records outlive a stopped search.

Tune saves a search's trials and its searcher's state, but a restored search rebuilds its scheduler
from the settings it started with, so ASHA would forget every score recorded at its rungs before
the stop: a rung would judge later trials against only the ones that reach it after the resumption,
and a trial that had passed a rung before the stop would be recorded there with its score at the
end, a later and higher one. This scheduler writes its records beside the search after each
decision and reads them back when the resumed search adds its first trial.

Imported only when a search runs (Ray is an optional dependency).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler


class ResumableASHA(ASHAScheduler):
    """:class:`ray.tune.schedulers.ASHAScheduler` that keeps its state in ``state_path``.

    :param state_path: the file its records go to (Ray's own ``save`` format), read back on resumption
    :param kwargs: ``ASHAScheduler``'s arguments
    """

    def __init__(self, state_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state_path = state_path
        self.read_back = False

    def _read_back_once(self) -> None:
        if not self.read_back:
            self.read_back = True
            if Path(self.state_path).is_file():
                self.restore(self.state_path)

    def _write(self) -> None:
        partial = f"{self.state_path}.partial"
        self.save(partial)
        os.replace(partial, self.state_path)  # a stop while writing leaves the previous records whole

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._read_back_once()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._read_back_once()
        action = super().on_trial_result(tune_controller, trial, result)
        self._write()
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._read_back_once()
        super().on_trial_complete(tune_controller, trial, result)
        self._write()
