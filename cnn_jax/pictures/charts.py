"""The pictures drawn from a run's numbers alone: its learning curves, and a split's confusion
matrix with each class's accuracy.

They need no parameters and no images (the results.json history, the confusion counts), so
they are cheap enough for every epoch end (run_pictures.py) and a report can draw them
without the checkpoint. Each `draw_*` function takes plain host values and returns a
matplotlib Figure (canvas.new_figure), drawn the same by the training loop, a report and a
notebook.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from cnn_jax.engine import metrics
from cnn_jax.pictures import canvas
from cnn_jax.pictures import scales


def draw_learning_curves(history: Sequence[dict[str, Any]], title: str):
  """Loss and error per epoch for train and each evaluated split (results.json history)."""
  figure = canvas.new_figure(9, 3.6)
  axes = figure.subplots(1, 2)
  epochs = [record['epoch'] for record in history]
  splits = [s for s in canvas.SPLIT_COLORS if any(s in record for record in history)]
  for axis, name in zip(axes, (metrics.LOSS, metrics.ERROR)):
    shown = []
    for split in splits:
      points = [(e, r[split][name]) for e, r in zip(epochs, history)
                if name in r.get(split, {})]
      if points:
        axis.plot(*zip(*points), marker='o', markersize=3, label=split,
                  color=canvas.SPLIT_COLORS[split])
        shown += [value for _, value in points]
    axis.set_xlabel('epoch')
    axis.set_ylabel(name)
    scales.value_axis(axis, shown, metrics.BY_NAME[name].percent)
    scales.count_ticks(axis.xaxis)
    axis.grid(True, which='both', alpha=0.3)
    axis.legend()
  axes[0].set_title('loss (softmax cross-entropy)')
  axes[1].set_title('error')
  figure.suptitle(title)
  return figure


def draw_confusion(confusion, split: str, title: str):
  """The confusion matrix (true by predicted, counts) and each class's accuracy."""
  from matplotlib.colors import LogNorm  # pylint: disable=g-import-not-at-top
  counts = np.asarray(confusion, np.int64)
  classes = len(counts)
  figure = canvas.new_figure(11, 5.2)
  matrix_axis, bars_axis = figure.subplots(1, 2, width_ratios=(1.25, 1))
  # Off the diagonal the counts are small: a log scale shows the mistakes next to the hits.
  matrix_axis.imshow(np.maximum(counts, 0.5), cmap='Blues', norm=LogNorm(vmin=0.5))
  for t in range(classes):
    for p in range(classes):
      if counts[t, p]:
        matrix_axis.text(p, t, str(counts[t, p]), ha='center', va='center', fontsize=canvas.SMALL,
                         color='white' if t == p else ('black' if counts[t, p] < 10
                                                       else canvas.WRONG_COLOR))
  matrix_axis.set_xticks(range(classes))
  matrix_axis.set_yticks(range(classes))
  matrix_axis.set_xlabel('predicted label')
  matrix_axis.set_ylabel('true label')
  matrix_axis.set_title(f'confusion matrix ({split}, {counts.sum():,} images)')
  _draw_class_accuracy(bars_axis, counts)
  figure.suptitle(title)
  return figure


def _draw_class_accuracy(axis, counts: np.ndarray) -> None:
  """Each class's accuracy as a bar, the worst in red, its value at the right edge of the
  axes (written at the bar's end, a value near 100% would run off the axes)."""
  classes = len(counts)
  accuracy = np.array([np.nan if a is None else a for a in metrics.per_class_accuracy(counts)])
  known = not np.all(np.isnan(accuracy))
  worst = np.nanargmin(accuracy) if known else None
  axis.barh(range(classes), accuracy,
            color=[canvas.WRONG_COLOR if c == worst else '#1f77b4' for c in range(classes)])
  # From just below the worst class, so that their differences show; an accuracy ends at 100%.
  low = math.floor(100 * np.nanmin(accuracy)) - 1 if known else 0
  axis.set_xlim(max(0, low) / 100, 1)
  scales.value_ticks(axis.xaxis, percent=True, log=False)
  axis.set_yticks(range(classes))
  axis.invert_yaxis()  # digit 0 on top, as in the matrix
  values = axis.secondary_yaxis('right')
  values.set_yticks(range(classes),
                    labels=['-' if np.isnan(a) else f'{100 * a:.2f}%' for a in accuracy])
  values.tick_params(length=0)
  axis.set_xlabel('accuracy')
  axis.set_ylabel('true label')
  axis.set_title('per-class accuracy (worst in red)')
