"""The sweep's optuna study and the SQLite storage behind it, addressed by trial number through optuna's public
API only.

``study.ask()`` gives an :class:`optuna.Trial` to report to, but a trial re-attached to its job after a restart
has none. So every trial reports its intermediate values, is asked about pruning and is marked for requeueing the
same way: through the public methods of the :class:`~optuna.storages.RDBStorage` this module creates and owns.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

REQUEUED = "requeued"
"""User attribute of a trial that never got a job; its parameters were queued again as a new trial."""


class StudyStore:
    """The optuna study of one sweep (created on first use, loaded afterwards) and the storage it lives in."""

    def __init__(self, path: Path, name: str, sampler: optuna.samplers.BaseSampler,
                 pruner: optuna.pruners.BasePruner, direction: str) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
        self.study = optuna.create_study(study_name=name, storage=self.storage, sampler=sampler, pruner=pruner,
                                         direction=direction, load_if_exists=True)
        self.study_id = self.storage.get_study_id_from_name(name)

    def trial_id(self, number: int) -> int:
        """The storage's id of the study's trial ``number``."""
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def report(self, number: int, step: int, value: float) -> None:
        """Record a running trial's objective value at ``step`` (the pruners' input)."""
        self.storage.set_trial_intermediate_value(self.trial_id(number), step, float(value))

    def should_prune(self, number: int) -> bool:
        """What the study's pruner says of the running trial's values so far."""
        return self.study.pruner.prune(self.study, self.storage.get_trial(self.trial_id(number)))

    def requeue(self, trial: FrozenTrial) -> None:
        """Fail a running trial whose job was never submitted and queue its parameters as a new trial."""
        self.storage.set_trial_user_attr(self.trial_id(trial.number), REQUEUED, True)
        self.study.tell(trial.number, state=TrialState.FAIL)
        self.study.enqueue_trial(trial.params, skip_if_exists=False)

    def running(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

    def launched(self) -> int:
        """How many trials were started, counting each requeued parameter set once."""
        return sum(1 for trial in self.study.get_trials(deepcopy=False)
                   if trial.state is not TrialState.WAITING and not trial.user_attrs.get(REQUEUED))
