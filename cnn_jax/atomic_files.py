"""Files written whole or not at all, and a write that fails as one line.

Every file a run or sweep keeps (checkpoint, results.json, config.json, predictions,
pictures, tables, caches) is written to a temporary file beside it and renamed over it, so a
reader, or a process killed mid-write, never sees half a file. When the write fails (a full
disk, a quota, a read-only mount), the temporary file is removed and DiskError names the
file: the file it would have replaced, and every other, is as it was, so the same command
resumes from the last checkpoint once there is space (tried with a 60 KB tmpfs workdir).
"""
from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np

from cnn_jax.errors import UserError


class DiskError(UserError):

  def __init__(self, path: str, error: OSError):
    super().__init__(
        f'cannot write {path}: {error.strerror or error} (errno {error.errno}); nothing was '
        'left half-written, and the last checkpoint and results are as they were: free some '
        'space and run the same command again')
    self.path, self.errno = path, error.errno


def write_bytes(path: str, data: bytes) -> None:
  tmp = f'{path}.{os.getpid()}.tmp'
  try:
    with open(tmp, 'wb') as f:
      f.write(data)
    os.replace(tmp, path)
  except OSError as error:
    try:
      os.remove(tmp)
    except OSError:
      pass
    raise DiskError(path, error) from None


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode())


def write_json(path: str, value: Any, **dump_options) -> None:
  write_text(path, json.dumps(value, **dump_options))


def write_npz(path: str, **arrays) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  write_bytes(path, buffer.getvalue())

