"""The loop's clock: how long training took, apart from what is not training.

The first compiled call's time is mostly compilation: the records keep it as
first_step_seconds, and the ETA's speed counts only the steps after it. Evaluation,
checkpoints and re-packing are not training time either: the loop restarts the clock after
them, so train_seconds and the ETA cover training alone.
"""
from __future__ import annotations

import time

import jax


def seconds_left(steps_left: int, timed_steps: int, timed_seconds: float) -> float | None:
  """The time the remaining train steps should take at the speed of the timed ones; None
  before any step was timed (only the first call so far)."""
  if timed_steps <= 0:
    return None
  return steps_left * timed_seconds / timed_steps


class TrainingClock:
  """The seconds of the current log window, and the timed steps and seconds behind the ETA.

  window_start        the step the current window's timing started at
  first_call_seconds  the first call's seconds (compilation and one call), once it ran
  """

  def __init__(self, step: int):
    self.window_start = step
    self.first_call_seconds = None
    self.timed_steps, self.timed_seconds = 0, 0.0
    self._mark = time.time()
    self._untimed = (0, 0.0)  # the steps and seconds of this window the ETA leaves out

  def called(self, steps: int, state: dict) -> float | None:
    """After a train call of `steps` steps: on the first, waits for it (the one sync outside
    log steps) and returns its seconds; None on every later call."""
    if self.first_call_seconds is not None:
      return None
    jax.block_until_ready(state['sums'])
    self.first_call_seconds = time.time() - self._mark
    self._untimed = (steps, self.first_call_seconds)
    return self.first_call_seconds

  def open_seconds(self) -> float:
    """The seconds of the window so far (a signal between log steps checkpoints them)."""
    return time.time() - self._mark

  def close_window(self, step: int) -> tuple[float, int]:
    """Ends the window at `step`: (its seconds, its steps); the ETA's speed takes them in,
    less the first call's."""
    now = time.time()
    seconds, self._mark = now - self._mark, now
    steps = step - self.window_start
    self.timed_steps += steps - self._untimed[0]
    self.timed_seconds += seconds - self._untimed[1]
    self._untimed = (0, 0.0)
    self.window_start = step
    return seconds, steps

  def restart(self) -> None:
    """After evaluation, checkpoints and re-packing: the next window starts timing now."""
    self._mark = time.time()

  def eta(self, steps_left: int) -> float | None:
    return seconds_left(steps_left, self.timed_steps, self.timed_seconds)
