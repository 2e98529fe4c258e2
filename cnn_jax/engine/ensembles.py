"""Ensembles of runs: the mean of their predicted probabilities, scored on the split's labels.

Every run that trains to its last step keeps its test split's probabilities and labels beside
its results (PREDICTIONS: float32 probabilities in the split's order, and the labels, so a
kept file is scored alone and runs of different splits are never averaged), so that the
ensemble of any finished runs on the same data can be scored without running their models
again: the
members of a vmapped group of seeds are scored together at the group's end (their
results.json's 'ensemble'), a sweep's report scores each configuration's seeds, and
`python -m cnn_jax.evaluate --workdir=D1,D2,...` scores runs from their checkpoints.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnn_jax import atomic_files

PREDICTIONS = 'test_predictions.npz'


def figures(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """{'error', 'accuracy', 'loss'} of the ensemble whose members' probabilities are
  `probabilities` (members, examples, classes): argmax and cross-entropy of their mean."""
  mean = np.mean(np.asarray(probabilities, np.float64), axis=0)
  wrong = float(np.mean(np.argmax(mean, axis=-1) != labels))
  picked = mean[np.arange(len(labels)), labels]
  return {'error': wrong, 'accuracy': 1.0 - wrong,
          'loss': float(-np.mean(np.log(np.maximum(picked, 1e-12))))}


def write(workdir: str, probabilities: np.ndarray, labels: np.ndarray) -> None:
  atomic_files.write_npz(os.path.join(workdir, PREDICTIONS),
                         probabilities=np.asarray(probabilities, np.float32),
                         labels=np.asarray(labels, np.int32))


def read(workdir: str) -> tuple[np.ndarray, np.ndarray] | None:
  """(probabilities, labels) a run kept, or None."""
  path = os.path.join(workdir, PREDICTIONS)
  if not os.path.exists(path):
    return None
  with np.load(path) as kept:
    return kept['probabilities'], kept['labels']


def of_runs(workdirs: Sequence[str]) -> dict[str, float] | None:
  """The ensemble figures of runs from their kept predictions; None unless at least two
  kept predictions of one split (the same labels in the same order)."""
  kept = [k for k in (read(w) for w in workdirs) if k is not None]
  if len(kept) < 2 or any(not np.array_equal(k[1], kept[0][1]) for k in kept[1:]):
    return None
  return figures(np.stack([k[0] for k in kept]), kept[0][1])
