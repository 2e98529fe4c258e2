"""The pictures the tutorials draw by hand, drawn for every run with matplotlib.

Each `draw_*` function takes plain host arrays (history records, confusion counts, images,
probabilities, a kernel, activation maps) and returns a matplotlib Figure, so the training
loop, the report and a notebook draw the same pictures from whatever they hold. `render`
turns figures into PNG bytes. Figures are built with matplotlib's object API (no pyplot), so
drawing needs no display and may run in a worker thread.

matplotlib is imported on first use: importing it costs about a second, which a run's start
does not pay.
"""
from __future__ import annotations

import io
import math
import struct
import textwrap
from typing import Any, Sequence

import numpy as np

from cnn_jax.engine import metrics

DPI = 80
# The smallest text of a picture, in points: 10 px at DPI, about the least that reads at the
# size the pictures are committed and shown (7 pt, 8 px, did not).
SMALL = 9
# A value axis is logarithmic when every value is positive and the largest is more than
# LOG_RATIO times the smallest. On a linear axis the values near the smallest would then
# share the bottom fifth of its height, and their differences, the ones a reader looks for
# (the best trials, the last epochs), vanish: one chance-level trial at 90% error flattens
# trials at 1.4-4% into a line at zero. A zero or negative value keeps the axis linear, as a
# log axis cannot draw it.
LOG_RATIO = 5.0
WRONG_COLOR = '#d62728'
SPLIT_COLORS = {'train': '#1f77b4', 'validation': '#ff7f0e', 'test': '#2ca02c'}


def new_figure(width: float, height: float):
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top  (slow import)
  return Figure(figsize=(width, height), dpi=DPI, layout='constrained')


def render(figure) -> tuple[bytes, int, int]:
  """(PNG bytes, height, width) of a figure; the size read from the PNG itself (its IHDR
  chunk), which the renderer may have rounded."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=DPI)
  png = buffer.getvalue()
  width, height = struct.unpack('>II', png[16:24])
  return png, height, width


def spans_decades(values) -> bool:
  """Whether an axis showing `values` is logarithmic (LOG_RATIO); NaNs are left out."""
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  return bool(values.size) and values.min() > 0 and values.max() > LOG_RATIO * values.min()


def value_axis(axes, values, percent: bool, which: str = 'y') -> None:
  """The scale and tick labels of the axis (`which`: 'x' or 'y') of `axes` that shows
  `values`: logarithmic where they span decades (spans_decades), labelled in percent
  ('1.5%') when `percent` (the values are fractions, as the metrics and the study keep
  them)."""
  log = spans_decades(values)
  if log:
    getattr(axes, f'set_{which}scale')('log')
  value_ticks(getattr(axes, f'{which}axis'), percent, log)


def value_ticks(axis, percent: bool, log: bool) -> None:
  """Tick labels of a matplotlib Axis (a colorbar's too) that shows fractions or plain
  values, written plainly: '1.5%', '96.5%', '0.05' (not 1.50%, 96.50%, 5x10^-2), short enough
  not to run into each other. On a log axis, ticks at 1, 2 and 5 of each decade, so that an
  axis spanning a decade or two has several labels (matplotlib labels the decades alone, or
  on a shorter span every minor tick, 0.06 0.07 0.08 ... on top of each other)."""
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top  (slow import)
  if log:
    axis.set_major_locator(ticker.LogLocator())  # the decades
    # Beyond ~9 decades matplotlib drops these minor ticks and keeps the decades alone.
    axis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
  if log or percent:
    written = ticker.FuncFormatter(lambda value, _: f'{100 * value:g}%' if percent
                                   else f'{value:g}')
    axis.set_major_formatter(written)
    if log:
      axis.set_minor_formatter(written)


def count_ticks(axis) -> None:
  """Integer ticks only, on a matplotlib Axis of counts (epochs, evaluations, trials), where
  matplotlib would put ticks at 1.25 and 1.75 between evaluations 1 and 2."""
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top  (slow import)
  axis.set_major_locator(ticker.MaxNLocator(integer=True))


def draw_learning_curves(history: Sequence[dict[str, Any]], title: str):
  """Loss and error per epoch for train and each evaluated split (results.json history)."""
  figure = new_figure(9, 3.6)
  axes = figure.subplots(1, 2)
  epochs = [record['epoch'] for record in history]
  splits = [s for s in SPLIT_COLORS if any(s in record for record in history)]
  for axis, name in zip(axes, (metrics.LOSS, metrics.ERROR)):
    shown = []
    for split in splits:
      points = [(e, r[split][name]) for e, r in zip(epochs, history)
                if name in r.get(split, {})]
      if points:
        axis.plot(*zip(*points), marker='o', markersize=3, label=split,
                  color=SPLIT_COLORS[split])
        shown += [value for _, value in points]
    axis.set_xlabel('epoch')
    axis.set_ylabel(name)
    value_axis(axis, shown, metrics.BY_NAME[name].percent)
    count_ticks(axis.xaxis)
    axis.grid(True, which='both', alpha=0.3)
    axis.legend()
  axes[0].set_title('loss (softmax cross-entropy)')
  axes[1].set_title('error')
  figure.suptitle(title)
  return figure


def _digit_grid(images: np.ndarray, captions: Sequence[str], wrong: Sequence[bool],
                title: str, columns: int = 10):
  rows = max(1, math.ceil(len(images) / columns))
  lines = max((caption.count('\n') + 1 for caption in captions), default=1)
  figure = new_figure(columns * 0.95, rows * (0.95 + 0.2 * lines) + 0.7)
  axes = np.atleast_1d(figure.subplots(rows, columns)).reshape(-1)
  for axis in axes:
    axis.set_axis_off()
  for axis, image, caption, bad in zip(axes, images, captions, wrong):
    axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap='gray_r',
                vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
    axis.set_title(caption, fontsize=SMALL, color=WRONG_COLOR if bad else 'black')
    if bad:  # a red frame, readable without colour vision as well as the caption's 'true'
      axis.set_axis_on()
      axis.set_xticks([])
      axis.set_yticks([])
      for spine in axis.spines.values():
        spine.set_color(WRONG_COLOR)
        spine.set_linewidth(2)
  figure.suptitle(title)
  return figure


def draw_predictions(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                     title: str, count: int = 40):
  """The first `count` digits with the predicted label; wrong ones in red with the truth."""
  count = min(count, len(labels))
  predicted = probabilities[:count].argmax(-1)
  wrong = predicted != labels[:count]
  captions = [f'{p} (true {t})' if bad else f'{p}'
              for p, t, bad in zip(predicted, labels[:count], wrong)]
  return _digit_grid(images[:count], captions, wrong,
                     f'{title}: first {count} test digits, predicted label '
                     f'({int(wrong.sum())} wrong, in red)')


def most_confidently_wrong(labels: np.ndarray, probabilities: np.ndarray,
                           count: int) -> np.ndarray:
  """Indices of the misclassified examples with the highest predicted probability."""
  predicted = probabilities.argmax(-1)
  wrong = np.flatnonzero(predicted != labels)
  confidence = probabilities[wrong, predicted[wrong]]
  return wrong[np.argsort(-confidence, kind='stable')[:count]]


def draw_confidently_wrong(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                           title: str, count: int = 20):
  chosen = most_confidently_wrong(labels, probabilities, count)
  predicted = probabilities.argmax(-1)
  captions = [f'{predicted[i]} at {100 * probabilities[i, predicted[i]]:.0f}%\ntrue {labels[i]}'
              for i in chosen]
  total_wrong = int((predicted != labels).sum())
  return _digit_grid(images[chosen], captions, [True] * len(chosen),
                     f'{title}: the {len(chosen)} most confidently wrong of {total_wrong} '
                     'misclassified test digits\n(predicted label at its probability, true label)')


def draw_confusion(confusion, split: str, title: str):
  """The confusion matrix (true by predicted, counts) and each class's accuracy."""
  from matplotlib.colors import LogNorm  # pylint: disable=g-import-not-at-top
  counts = np.asarray(confusion, np.int64)
  classes = len(counts)
  figure = new_figure(11, 5.2)
  matrix_axis, bars_axis = figure.subplots(1, 2, width_ratios=(1.25, 1))
  # Off the diagonal the counts are small: a log scale shows the mistakes next to the hits.
  matrix_axis.imshow(np.maximum(counts, 0.5), cmap='Blues', norm=LogNorm(vmin=0.5))
  for t in range(classes):
    for p in range(classes):
      if counts[t, p]:
        matrix_axis.text(p, t, str(counts[t, p]), ha='center', va='center', fontsize=SMALL,
                         color='white' if t == p else ('black' if counts[t, p] < 10
                                                       else WRONG_COLOR))
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
            color=[WRONG_COLOR if c == worst else '#1f77b4' for c in range(classes)])
  # From just below the worst class, so that their differences show; an accuracy ends at 100%.
  low = math.floor(100 * np.nanmin(accuracy)) - 1 if known else 0
  axis.set_xlim(max(0, low) / 100, 1)
  value_ticks(axis.xaxis, percent=True, log=False)
  axis.set_yticks(range(classes))
  axis.invert_yaxis()  # digit 0 on top, as in the matrix
  values = axis.secondary_yaxis('right')
  values.set_yticks(range(classes),
                    labels=['-' if np.isnan(a) else f'{100 * a:.2f}%' for a in accuracy])
  values.tick_params(length=0)
  axis.set_xlabel('accuracy')
  axis.set_ylabel('true label')
  axis.set_title('per-class accuracy (worst in red)')


def _grid_shape(count: int, max_columns: int = 8) -> tuple[int, int]:
  columns = min(count, max_columns)
  return math.ceil(count / columns), columns


def draw_filters(kernel: np.ndarray, layer: str, title: str):
  """A first-layer kernel (k, k, in, out) as one image per filter; blue negative, red
  positive, on one symmetric scale, so filters compare. Multi-channel inputs show the mean
  over input channels."""
  kernel = np.asarray(kernel)
  weights = kernel[:, :, 0, :] if kernel.shape[2] == 1 else kernel.mean(axis=2)
  filters = weights.shape[-1]
  rows, columns = _grid_shape(filters)
  figure = new_figure(max(columns * 1.1 + 0.8, 6), rows * 1.1 + 0.8)
  axes = np.atleast_1d(figure.subplots(rows, columns)).reshape(-1)
  limit = float(np.abs(weights).max()) or 1.0
  shown = None
  for i, axis in enumerate(axes):
    axis.set_axis_off()
    if i < filters:
      shown = axis.imshow(weights[..., i], cmap='RdBu_r', vmin=-limit, vmax=limit)
      axis.set_title(str(i), fontsize=SMALL)
  figure.colorbar(shown, ax=list(axes), shrink=0.8, label='weight')
  k = kernel.shape[0]
  figure.suptitle(f'{title}: {layer} filters ({filters} of {k}x{k}'
                  f'{", mean over input channels" if kernel.shape[2] > 1 else ""})')
  return figure


def draw_activations(image: np.ndarray, label: int, maps: dict[str, np.ndarray], title: str,
                     max_channels: int = 16):
  """One digit and, for each layer in `maps` ({layer: (H, W, C)} in layer order), its first
  `max_channels` channels, each framed and numbered. A layer's channels share one scale (its
  bar at the right of the row: black high, white zero or the layer's lowest value), so that
  they compare; a channel that is zero all over this digit is an empty frame, numbered
  '<channel>: all 0'."""
  layers = list(maps)
  columns = min(max_channels, max(m.shape[-1] for m in maps.values()))
  figure = new_figure(max(columns, 4) * 0.85 + 2.0, (len(layers) + 1) * 1.1 + 0.5)
  axes = figure.subplots(len(layers) + 1, columns, squeeze=False)
  for axis in axes.reshape(-1):
    axis.set_axis_off()
  _framed(axes[0, 0], image[..., 0] if image.shape[-1] == 1 else image, 'input')
  axes[0, 0].set_title(f'label {label}', fontsize=SMALL)
  for row, layer in enumerate(layers, start=1):
    values = maps[layer][..., :columns]
    low = min(0.0, float(values.min()))  # below 0 only for tanh-like activations
    high = max(float(values.max()), low + 1e-6)
    for c in range(values.shape[-1]):
      shown = _framed(axes[row, c], values[..., c], None, vmin=low, vmax=high)
      axes[row, c].set_title(f'{c}' if np.any(values[..., c]) else f'{c}: all 0',
                             fontsize=SMALL)
    bar = figure.colorbar(shown, ax=list(axes[row]), aspect=10, pad=0.01)
    bar.ax.tick_params(labelsize=SMALL)
    channels = maps[layer].shape[-1]
    more = f'\n{columns} of {channels}' if channels > columns else ''
    axes[row, 0].set_ylabel(f'{layer}\n{values.shape[0]}x{values.shape[1]}{more}',
                            fontsize=SMALL)
  figure.suptitle(f'{title}: activation maps of test digit {label} after each layer '
                  '(channel numbers above; one scale a layer, at the right)')
  return figure


def _framed(axis, picture: np.ndarray, name: str | None, **scale):
  """`picture` in `axis` inside a thin frame (a tile as white as the figure still shows),
  named at its left; returns the image."""
  axis.set_axis_on()
  axis.set_xticks([])
  axis.set_yticks([])
  for spine in axis.spines.values():
    spine.set_color('0.5')
    spine.set_linewidth(0.8)
  if name:
    axis.set_ylabel(name, fontsize=SMALL)
  return axis.imshow(picture, cmap='gray_r', **scale)


def draw_augmented(images: np.ndarray, augmented: np.ndarray, labels: np.ndarray,
                   described: str, title: str):
  """Training digits (N, H, W, C; uint8 or in [0, 1]) in the top row and, below each, its
  augmented versions (N, K, H, W, C in [0, 1], as the train step sees them); `described`
  names the strengths."""
  originals = np.asarray(images, np.float32) / (255 if images.dtype == np.uint8 else 1)
  count, copies = augmented.shape[:2]
  width = max(count * 0.95, 6)
  figure = new_figure(width, (copies + 1) * 0.95 + 1.2)
  axes = figure.subplots(copies + 1, count, squeeze=False)
  for column in range(count):
    for row, image in enumerate([originals[column], *augmented[column]]):
      axis = axes[row, column]
      axis.set_axis_off()
      axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap='gray_r',
                  vmin=0, vmax=1)
    axes[0, column].set_title(str(labels[column]), fontsize=SMALL)
  # Every strength named can be longer than the figure is wide: wrapped at ~9 characters an
  # inch of the title's font.
  figure.suptitle(f'{title}: training digits (top row) and {copies} augmentations of each\n'
                  + textwrap.fill(f'({described})', int(width * 9)))
  return figure
