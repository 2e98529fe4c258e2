"""Ensembles of runs: the mean of their predicted probabilities, scored on the split's labels.

Every run that trains to its last step keeps its test split's probabilities beside its
results (PROBABILITIES, float32, in the test split's order), so that the ensemble of any
finished runs on the same data can be scored without running their models again: the
members of a vmapped group of seeds are scored together at the group's end (their
results.json's 'ensemble'), a sweep's report scores each configuration's seeds, and
`python -m cnn_jax.evaluate --workdir=D1,D2,...` scores runs from their checkpoints.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

PROBABILITIES = 'test_probabilities.npy'


def figures(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """{'error', 'accuracy', 'loss'} of the ensemble whose members' probabilities are
  `probabilities` (members, examples, classes): argmax and cross-entropy of their mean."""
  mean = np.mean(np.asarray(probabilities, np.float64), axis=0)
  wrong = float(np.mean(np.argmax(mean, axis=-1) != labels))
  picked = mean[np.arange(len(labels)), labels]
  return {'error': wrong, 'accuracy': 1.0 - wrong,
          'loss': float(-np.mean(np.log(np.maximum(picked, 1e-12))))}


def write(workdir: str, probabilities: np.ndarray) -> None:
  path = os.path.join(workdir, PROBABILITIES)
  tmp = f'{path}.{os.getpid()}.tmp.npy'
  np.save(tmp, np.asarray(probabilities, np.float32))
  os.replace(tmp, path)


def read(workdir: str) -> np.ndarray | None:
  path = os.path.join(workdir, PROBABILITIES)
  return np.load(path) if os.path.exists(path) else None


def of_runs(workdirs: Sequence[str], labels: np.ndarray) -> dict[str, float] | None:
  """The ensemble figures of runs from their kept probabilities; None unless at least two
  of them kept probabilities of `labels`' split."""
  kept = [p for p in (read(w) for w in workdirs) if p is not None and len(p) == len(labels)]
  return figures(np.stack(kept), labels) if len(kept) > 1 else None
