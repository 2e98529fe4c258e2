"""Files written whole or not at all, read back or refused as one line, and never replaced
by less than they hold.

Every file a run or sweep keeps (checkpoint, results.json, config.json, predictions,
pictures, tables, caches) is written to a temporary file beside it and renamed over it, so a
reader, or a process killed mid-write, never sees half a file. When the write fails (a full
disk, a quota, a read-only mount), the temporary file is removed and DiskError names the
file and what to do for that cause: the file it would have replaced, and every other, is as
it was, so the same command resumes from the last checkpoint once there is space (tried with
a 60 KB tmpfs workdir). A directory that cannot be made (`make_dirs`: a file in the way, a
read-only filesystem) and a JSON file that does not parse (`read_json`: damaged by hand, by a
copy, by another program) are one line each, naming the path. A table of results (the
reproduction table, a sweep's table) is rewritten only with every result it held
(`refuse_losing`), unless the command's flag says to drop them.
"""
from __future__ import annotations

import errno as errno_codes
import io
import json
import os
from typing import Any, Iterable

import numpy as np

from cnn_jax.errors import InputError
from cnn_jax.errors import RunDirectoryError
from cnn_jax.errors import UserError

# What to do about a failed write, by its cause; other causes get the generic advice.
_ADVICE = {
    errno_codes.ENOSPC: 'free some space and run the same command again',
    errno_codes.EDQUOT: 'free some of your quota and run the same command again',
    errno_codes.EROFS: 'the filesystem is read-only: give a directory on a writable one '
                       '(--workdir, --output) or remount it writable',
    errno_codes.EACCES: 'you may not write there: give a directory you own, or change its '
                        'permissions',
    errno_codes.EPERM: 'you may not write there: give a directory you own, or change its '
                       'permissions',
    errno_codes.ENOTDIR: 'a file stands where a directory is needed: give another path, or '
                         'move the file',
    errno_codes.EEXIST: 'a file stands where a directory is needed: give another path, or '
                        'move the file',
}


def advice(error: OSError) -> str:
  return _ADVICE.get(error.errno, 'fix the cause and run the same command again')


class DiskError(UserError):

  def __init__(self, path: str, error: OSError):
    super().__init__(
        f'cannot write {path}: {error.strerror or error} (errno {error.errno}); nothing was '
        f'left half-written, and the last checkpoint and results are as they were: '
        f'{advice(error)}')
    self.path, self.errno = path, error.errno


def make_dirs(path: str) -> None:
  """os.makedirs(path, exist_ok=True), with a file in the way or a directory that cannot be
  made as one line naming the path."""
  if os.path.isdir(path):
    return
  if os.path.lexists(path):
    raise InputError(f'{path} is a file, not a directory: give another directory, or move '
                     'the file')
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as error:
    blocking = _file_above(path)
    if blocking:
      raise InputError(f'{path} cannot be a directory: {blocking} is a file; give another '
                       'directory, or move the file') from None
    raise InputError(f'cannot create the directory {path}: {error.strerror or error}; '
                     f'{advice(error)}') from None


def _file_above(path: str) -> str | None:
  """The first existing path above `path` that is not a directory, or None."""
  parent = os.path.dirname(os.path.abspath(path))
  while parent and parent != os.path.dirname(parent):
    if os.path.lexists(parent):
      return None if os.path.isdir(parent) else parent
    parent = os.path.dirname(parent)
  return None


def writable_directory(path: str, flag: str) -> None:
  """Checks, before any work, that `path` is (or can be made) a directory this process may
  write in: a run that trains for an hour must not fail at its first checkpoint."""
  make_dirs(path)
  if not os.access(path, os.W_OK | os.X_OK):
    raise InputError(f'{flag}={path}: this process may not write in it (permissions, or a '
                     'read-only filesystem); give a directory you can write in')
  probe = os.path.join(path, f'.write-test.{os.getpid()}')
  try:  # os.access does not see a read-only mount from root
    with open(probe, 'wb'):
      pass
    os.remove(probe)
  except OSError as error:
    raise InputError(f'{flag}={path}: cannot write in it: {error.strerror or error}; '
                     f'{advice(error)}') from None


def read_json(path: str, kind: type = dict) -> Any:
  """The JSON value in `path`, which must be a `kind`; a file that is not (empty, cut short,
  edited into something else) is one line naming it. A missing file is the caller's case."""
  try:
    with open(path, 'rb') as f:
      value = json.loads(f.read())
  except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
    raise RunDirectoryError(f'{path} is damaged (not JSON: {error}); restore it from a copy, '
                            'or give the command another directory') from None
  except IsADirectoryError:
    raise RunDirectoryError(f'{path} is a directory, not a file') from None
  if not isinstance(value, kind):
    raise RunDirectoryError(f'{path} is damaged: it holds a JSON {type(value).__name__}, '
                            f'not the {kind.__name__} this file always holds; restore it '
                            'from a copy, or remove it')
  return value


def refuse_losing(path: str, held: Iterable[str], kept: Iterable[str], why: str,
                  to_allow: str) -> None:
  """Refuses to rewrite the results table `path` when entries it holds (`held`) are missing
  from what would replace it (`kept`): a mistyped source or a smaller count must not wipe
  finished results. `to_allow` says how to ask for it anyway ('pass --allow_fewer')."""
  lost = sorted(set(held) - set(kept))
  if lost:
    shown = ', '.join(lost[:3]) + (f' and {len(lost) - 3} more' if len(lost) > 3 else '')
    raise InputError(f'{path} holds {len(lost)} result(s) that this command would drop '
                     f'({shown}): {why}; it is left as it was ({to_allow} to replace it '
                     'with fewer)')


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

