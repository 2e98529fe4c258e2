"""The pictures made of grids of small images: test digits with their predictions, the most
confidently wrong ones, the first-layer filters, one digit's activation maps, and training
digits with their augmentations.

These are the tutorials' hand-drawn pictures that need images or a trained run's parameters,
so a run draws them at its end (run_pictures.py). Each `draw_*` function takes plain host
arrays (images, labels, probabilities, a kernel, activation maps) and returns a matplotlib
Figure (canvas.new_figure), drawn the same by the training loop, a report and a notebook.
"""
from __future__ import annotations

import math
import textwrap
from typing import Sequence

import numpy as np

from cnn_jax.pictures import canvas


def _digit_grid(images: np.ndarray, captions: Sequence[str], wrong: Sequence[bool],
                title: str, columns: int = 10):
  rows = max(1, math.ceil(len(images) / columns))
  lines = max((caption.count('\n') + 1 for caption in captions), default=1)
  figure = canvas.new_figure(columns * 0.95, rows * (0.95 + 0.2 * lines) + 0.7)
  axes = np.atleast_1d(figure.subplots(rows, columns)).reshape(-1)
  for axis in axes:
    axis.set_axis_off()
  for axis, image, caption, bad in zip(axes, images, captions, wrong):
    axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap='gray_r',
                vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
    axis.set_title(caption, fontsize=canvas.SMALL, color=canvas.WRONG_COLOR if bad else 'black')
    if bad:  # a red frame, readable without colour vision as well as the caption's 'true'
      axis.set_axis_on()
      axis.set_xticks([])
      axis.set_yticks([])
      for spine in axis.spines.values():
        spine.set_color(canvas.WRONG_COLOR)
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
  figure = canvas.new_figure(max(columns * 1.1 + 0.8, 6), rows * 1.1 + 0.8)
  axes = np.atleast_1d(figure.subplots(rows, columns)).reshape(-1)
  limit = float(np.abs(weights).max()) or 1.0
  shown = None
  for i, axis in enumerate(axes):
    axis.set_axis_off()
    if i < filters:
      shown = axis.imshow(weights[..., i], cmap='RdBu_r', vmin=-limit, vmax=limit)
      axis.set_title(str(i), fontsize=canvas.SMALL)
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
  figure = canvas.new_figure(max(columns, 4) * 0.85 + 2.0, (len(layers) + 1) * 1.1 + 0.5)
  axes = figure.subplots(len(layers) + 1, columns, squeeze=False)
  for axis in axes.reshape(-1):
    axis.set_axis_off()
  _framed(axes[0, 0], image[..., 0] if image.shape[-1] == 1 else image, 'input')
  axes[0, 0].set_title(f'label {label}', fontsize=canvas.SMALL)
  for row, layer in enumerate(layers, start=1):
    values = maps[layer][..., :columns]
    low = min(0.0, float(values.min()))  # below 0 only for tanh-like activations
    high = max(float(values.max()), low + 1e-6)
    for c in range(values.shape[-1]):
      shown = _framed(axes[row, c], values[..., c], None, vmin=low, vmax=high)
      axes[row, c].set_title(f'{c}' if np.any(values[..., c]) else f'{c}: all 0',
                             fontsize=canvas.SMALL)
    bar = figure.colorbar(shown, ax=list(axes[row]), aspect=10, pad=0.01)
    bar.ax.tick_params(labelsize=canvas.SMALL)
    channels = maps[layer].shape[-1]
    more = f'\n{columns} of {channels}' if channels > columns else ''
    axes[row, 0].set_ylabel(f'{layer}\n{values.shape[0]}x{values.shape[1]}{more}',
                            fontsize=canvas.SMALL)
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
    axis.set_ylabel(name, fontsize=canvas.SMALL)
  return axis.imshow(picture, cmap='gray_r', **scale)


def draw_augmented(images: np.ndarray, augmented: np.ndarray, labels: np.ndarray,
                   described: str, title: str):
  """Training digits (N, H, W, C; uint8 or in [0, 1]) in the top row and, below each, its
  augmented versions (N, K, H, W, C in [0, 1], as the train step sees them); `described`
  names the strengths."""
  originals = np.asarray(images, np.float32) / (255 if images.dtype == np.uint8 else 1)
  count, copies = augmented.shape[:2]
  width = max(count * 0.95, 6)
  figure = canvas.new_figure(width, (copies + 1) * 0.95 + 1.2)
  axes = figure.subplots(copies + 1, count, squeeze=False)
  for column in range(count):
    for row, image in enumerate([originals[column], *augmented[column]]):
      axis = axes[row, column]
      axis.set_axis_off()
      axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap='gray_r',
                  vmin=0, vmax=1)
    axes[0, column].set_title(str(labels[column]), fontsize=canvas.SMALL)
  # Every strength named can be longer than the figure is wide: wrapped at ~9 characters an
  # inch of the title's font.
  figure.suptitle(f'{title}: training digits (top row) and {copies} augmentations of each\n'
                  + textwrap.fill(f'({described})', int(width * 9)))
  return figure
