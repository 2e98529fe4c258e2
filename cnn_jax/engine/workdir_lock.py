"""One process at a time per run directory.

An exclusive flock on <workdir>/.lock, with the holder's PID written inside for the message
the next process shows. The kernel drops an flock when its process dies, so a lock left by a
killed run is stale by construction: the next run simply takes it over.
"""
from __future__ import annotations

import fcntl
import os

from cnn_jax.errors import WorkdirLockedError

FILENAME = '.lock'


class WorkdirLock:

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, FILENAME)
    self._file = None

  def acquire(self) -> 'WorkdirLock':
    handle = open(self.path, 'a+')
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or 'unknown'
      handle.close()
      raise WorkdirLockedError(
          f'{os.path.dirname(self.path)} is in use by process {holder}, which is training '
          f'into it; wait for it to finish (or stop it), or pick another --workdir') from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    self._file = handle
    return self

  def release(self) -> None:
    if self._file is not None:
      self._file.close()  # closing drops the flock
      self._file = None
