"""The layer timings kept per machine in $CNN_JAX_CACHE/layer_choices.json, so that a layer
shape is timed once per machine and every later run there makes the same choice: the same
config and seed give the same numbers, run after run. Another machine may choose otherwise
(the implementations agree to float tolerance, not bit for bit), hence the key: backend,
processor or device, cores (machine.machine_key).

The file is {machine: {layer key (descriptors.py): entry}}. It is written whole under a lock
file, so sweep workers starting together neither time each other's measurements nor
overrule choices already made, and a reader without the lock never sees half a file. A
damaged file or an unwritable disk costs a measurement, never a run.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time

from absl import logging

from cnn_jax import atomic_files
from cnn_jax import machine

MEASUREMENTS = 'layer_choices.json'
# Entries of another version are measured again: version 1 (no 'version' field) kept the
# minimum of 5 one-shot calls per candidate, which noise on a shared machine flipped.
VERSION = 2


def entry(timed: dict[str, tuple[dict, dict, int]]) -> dict:
  """The cache entry of a layer from {part: (fastest ms, median ms, rounds)} (timing.py)."""
  return {'version': VERSION, 'rounds': min(rounds for _, _, rounds in timed.values()),
          'measured': time.strftime('%Y-%m-%d %H:%M'),
          'ms': {part: fastest for part, (fastest, _, _) in timed.items()},
          'median_ms': {part: median for part, (_, median, _) in timed.items()}}


def current(found) -> bool:
  """Whether a cache entry is of this VERSION and whole: else it is measured again."""
  return (isinstance(found, dict) and found.get('version') == VERSION
          and {'ms', 'median_ms', 'rounds', 'measured'} <= set(found))


def forget(path: str) -> int:
  """Drops every entry this machine has in the cache at `path`; returns how many."""
  with locked(path):
    everything = read(path)
    dropped = len(everything.pop(machine.machine_key(), {}))
    if dropped:
      write(path, everything)
  return dropped


@contextlib.contextmanager
def locked(path: str):
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(f'{path}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def read(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):  # a damaged cache is re-measured, not fatal
    return {}


def write(path: str, measured: dict) -> None:
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  try:  # never half a file, for a process reading without the lock
    atomic_files.write_json(path, measured, indent=1, sort_keys=True)
  except atomic_files.DiskError as error:  # a cache: measured again next time
    logging.warning('%s', error)
