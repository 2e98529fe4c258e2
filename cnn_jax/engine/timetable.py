"""When the loop's periodic actions are due: a log window closes at every log step and at
every evaluation; an evaluation comes at every epoch end, every train.eval_every_steps, every
interval of a population (population-based training ranks its members on it) and at the last
step; checkpoints at the epoch ends a record says are due. Between these
boundaries the host does not look at the device (engine/loop.py)."""
from __future__ import annotations

import dataclasses

from cnn_jax.data import batches


@dataclasses.dataclass(frozen=True)
class Due:
  """What is due after the call that ended at a step."""
  log: bool         # a log step
  epoch_end: bool   # an epoch ended in the call, or it was the last step
  evaluation: bool  # an epoch end, a train.eval_every_steps step or a population's interval
  interval: bool = False  # a population's interval (before the last step): it is ranked

  @property
  def window_closes(self) -> bool:
    """The host reads the train sums: a log step or an evaluation."""
    return self.log or self.evaluation


class Timetable:
  """The boundaries of a run of `total_steps` steps, from its first member's config (every
  member of a group shares the batch size, so its epochs end at the same steps).
  `interval`: a population's interval in steps (0: not a population); `breaks`: more steps
  where a call ends (the starts of segments: engine/segments.py)."""

  def __init__(self, train_cfg, order: batches.ShuffledBatches, total_steps: int,
               steps_per_call: int, interval: int = 0, breaks: tuple[int, ...] = ()):
    self.order, self.total_steps, self.steps_per_call = order, total_steps, steps_per_call
    self.log_every, self.eval_every = train_cfg.log_every_steps, train_cfg.eval_every_steps
    self.interval, self.breaks = interval, tuple(breaks)

  def steps_to_next_call_end(self, step: int) -> int:
    """How many steps the next call runs: steps_per_call, less where a boundary comes first."""
    to_interval = (step // self.interval + 1) * self.interval - step if self.interval else (
        self.steps_per_call)
    to_break = min((b - step for b in self.breaks if b > step), default=self.steps_per_call)
    return min(self.steps_per_call, to_interval, to_break, batches.steps_to_next_boundary(
        step, self.total_steps, self.log_every, self.order, self.eval_every))

  def due(self, step: int, steps: int) -> Due:
    """What is due after a call of `steps` steps that ended at `step`."""
    epoch_end = (self.order.epochs_completed(step) > self.order.epochs_completed(step - steps)
                 or step == self.total_steps)
    interval = bool(self.interval) and step % self.interval == 0 and step < self.total_steps
    evaluation = epoch_end or interval or bool(self.eval_every and step % self.eval_every == 0)
    return Due(log=step % self.log_every == 0, epoch_end=epoch_end, evaluation=evaluation,
               interval=interval)
