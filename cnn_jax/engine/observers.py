"""What code outside the engine sees of a training run, and the one way it stops a member.

The loop (engine/loop.py) knows nothing of pictures or of hyperparameter search; it tells
each member's observers what happened, at these moments:

  epoch_end(event)     after every evaluation (each epoch end, and every
                       train.eval_every_steps when set), for every running member;
  should_stop(event)   then, once every member's epoch_end was called at that step: a reason
                       to stop this member now (it is recorded 'pruned' with its figures so
                       far), or None;
  run_end(event)       when the member stops (it finished, diverged or was stopped), before
                       its results.json is written: what the observer must still write into
                       the run directory (the end-of-run pictures) belongs here;
  recorded(record)     after results.json was written: the record, as the loop returns it
                       (a study learns the trial's outcome here, so a trial complete in the
                       study is always complete on disk);
  close(cancel)        waits for work the observer runs in the background (it is called
                       before results.json is written) or, after an error, abandons it.

The two-step epoch end lets observers shared by several members (the seeds of one search
configuration) see every member's figures before deciding about any of them.
pictures/run_pictures.PictureObserver draws the run's pictures; sweeps/settling.py's
TrialObserver reports to an Optuna trial and asks its pruner.
"""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class EpochEnd:
  """One member's evaluation at `step`."""
  member: int                      # the member's position among those the loop was given
  workdir: str
  config: Any                      # the member's ConfigDict
  step: int
  epoch: float
  total_epochs: float
  history: tuple                   # the run's history records so far, this one last
  evaluated: dict                  # {split: {metric: value}} of this evaluation
  events: Any                      # the run's events.EventWriter (for image summaries)
  who: str = ''                    # the console prefix of a group member


@dataclasses.dataclass(frozen=True)
class RunEnd:
  """A member that stopped: its status ('ok', 'diverged', 'pruned'), history and last
  evaluation; `params` and `model_state` (host arrays: batch statistics, {} without) only
  when it trained to the end."""
  member: int
  workdir: str
  config: Any
  step: int
  status: str
  history: tuple
  final: dict
  events: Any
  splits: Any                      # data/datasets.Splits the run trained and evaluated on
  params: Any = None
  who: str = ''
  model_state: Any = None


class Observer:
  """No-op defaults: an observer overrides what it needs."""

  def epoch_end(self, event: EpochEnd) -> None:
    pass

  def should_stop(self, event: EpochEnd) -> str | None:
    del event
    return None

  def run_end(self, event: RunEnd) -> None:
    pass

  def recorded(self, record: dict) -> None:
    pass

  def close(self, cancel: bool = False) -> None:
    pass
