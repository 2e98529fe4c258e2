"""SIGTERM and SIGINT as requests to stop at the next step, with a checkpoint there.

Schedulers preempt with SIGTERM (SLURM, Kubernetes) and people press Ctrl-C. While
`catching()` is active (the entry points hold it for the whole process; engine/loop.py holds
it while it trains, for library use), either signal only records itself: the loop, at the
next step boundary, checkpoints every running member at that step (the batch order is a
function of seed and step, so a mid-epoch checkpoint resumes exactly) and raises
Interrupted, which the command line turns into one line and exit status 128 + the signal
(143 for SIGTERM, 130 for SIGINT). A sweep worker between trials stops the same way.

A repeated signal is expected, not impatience: SLURM signals every process of a job and a
sweep's parent passes its signal on to its workers, so a worker may receive two. The third
ends the process at once, without a checkpoint.

The user hears from the command they typed, once: its log says the signal came, and its
last line how to resume. A sweep's worker processes and the processes of a distributed run
other than 0 are `quiet()`: they log nothing of the signal, and their parent or process 0
speaks for them.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading

from absl import logging

from cnn_jax import credentials

SIGNALS = (signal.SIGTERM, signal.SIGINT)
FORCE_AFTER = 3  # signals

_received: list[int] = []
_listeners: list = []  # called with the signal number (a sweep's parent passes it on)
_quiet = False  # another process tells the user (see the module's docstring)


class Interrupted(BaseException):
  """Raised at a step boundary after a signal; BaseException so that no `except Exception`
  on the way takes it for a failed trial."""

  def __init__(self, signum: int, message: str, where: str = ''):
    super().__init__(message)
    self.signum, self.message, self.where = signum, message, where

  @property
  def exit_status(self) -> int:
    return 128 + self.signum


def name(signum: int) -> str:
  return signal.Signals(signum).name


def pending() -> int | None:
  """The first signal received since catching() began, or None."""
  return _received[0] if _received else None


def resume_command() -> str:
  """The command this process runs, to run again to resume (a password in it masked)."""
  command = shlex.join(['python', *sys.argv])
  shown = credentials.masked(command)
  if shown != command:
    shown += (' (with the password where it shows ***; better, put it in ~/.pgpass or '
              '$PGPASSWORD and leave it out of the URL: docs/SWEEPS.md)')
  if os.environ.get('SLURM_STEP_ID') is not None:  # one of srun's tasks: not on its own
    shown = (f'srun {shown} (in a job of the same shape; docs/launch/slurm.sbatch requeues '
             'itself instead)')
  return shown


def raise_if_pending(where: str) -> None:
  """Raises Interrupted if a signal came; `where` says what was saved, for its line."""
  signum = pending()
  if signum is not None:
    raise_stopped(signum, where)


def raise_stopped(signum: int, where: str) -> None:
  """Raises Interrupted for `signum` (this process's, or another process's of the run)."""
  raise Interrupted(signum, f'stopped by {name(signum)} {where}; to resume, run the same '
                    f'command again: {resume_command()}', where)


def request_stop() -> None:
  """Stops the loop at its next step with a checkpoint, as a SIGTERM would but without one:
  for a failure a thread notices (a sweep worker's lost storage, which then says so itself)."""
  if not _received:
    _received.append(signal.SIGTERM)


def quiet() -> None:
  """This process's stop is told by another (a sweep's parent, process 0)."""
  global _quiet
  _quiet = True


def is_quiet() -> bool:
  return _quiet


def add_listener(function) -> None:
  _listeners.append(function)


def _on_signal(signum, frame) -> None:
  del frame
  _received.append(signum)
  if len(_received) >= FORCE_AFTER:
    print(f'{name(signum)} received {len(_received)} times: exiting now, without a '
          'checkpoint', file=sys.stderr, flush=True)
    os._exit(128 + signum)  # pylint: disable=protected-access
  if len(_received) == 1 and not _quiet:
    logging.info('%s received: stopping at the next step, after a checkpoint there',
                 name(signum))
  for listener in list(_listeners):
    listener(signum)


@contextlib.contextmanager
def catching():
  """Signals only recorded, until the block ends (nested blocks share the first's handlers;
  outside the main thread, where Python cannot set handlers, nothing changes)."""
  if threading.current_thread() is not threading.main_thread() or (
      signal.getsignal(signal.SIGTERM) is _on_signal):
    yield
    return
  previous = {s: signal.signal(s, _on_signal) for s in SIGNALS}
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    _received.clear()
    _listeners.clear()
