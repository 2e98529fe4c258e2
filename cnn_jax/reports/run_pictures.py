"""Which pictures a run gets, and when: PNG files in `<workdir>/pictures/` and the same
images in the run's TensorBoard events (tag `pictures/<name>`).

At each epoch end (train.pictures='epochs') the cheap ones, drawn from host numbers the
record already holds: the learning curves and each evaluated split's confusion matrix. At
the end of the run (also with 'end') every picture, from the trained parameters: the test
digits with their predictions, the most confidently wrong ones, the first-layer filters and
one test digit's activation maps. 'none' draws nothing.

Drawing runs in one worker thread shared by every run of the process (matplotlib is not
made to draw from several threads at once; a vmapped group has several runs), so the
training loop never waits for matplotlib; a record waits for its own pictures only when the
run ends.
"""
from __future__ import annotations

from concurrent import futures
import os
from typing import Any, Callable

import numpy as np

from cnn_jax.reports import pictures

WHEN = ('epochs', 'end', 'none')  # train.pictures
DIRECTORY = 'pictures'
TAG_PREFIX = 'pictures/'
ACTIVATION_DIGIT = 0  # the test image whose activation maps are drawn: the first
_WORKERS: dict[int, futures.ThreadPoolExecutor] = {}


def _worker() -> futures.ThreadPoolExecutor:
  """This process's drawing thread, made on first use: a sweep worker forked from a process
  that had one must not inherit its (threadless) executor."""
  pid = os.getpid()
  if pid not in _WORKERS:
    _WORKERS[pid] = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='pictures')
  return _WORKERS[pid]


def title_of(config, workdir: str) -> str:
  return f'{config.model.name} ({os.path.basename(os.path.normpath(workdir))})'


def epoch_figures(history: list[dict], final: dict[str, dict], title: str) -> dict[str, Any]:
  """The pictures drawn from numbers alone: learning curves and confusion matrices."""
  figures = {}
  if history:
    figures['learning_curves'] = pictures.draw_learning_curves(history, title)
  for split, values in sorted(final.items()):
    if 'confusion' in values:
      figures[f'confusion_{split}'] = pictures.draw_confusion(values['confusion'], split, title)
  return figures


def end_figures(run, test, history: list[dict], final: dict[str, dict], title: str):
  """Every picture of a trained run (`run`: a trained.TrainedRun; `test`: the test Split)."""
  figures = epoch_figures(history, final, title)
  probabilities = run.predict(test.images)
  figures['predictions'] = pictures.draw_predictions(test.images, test.labels, probabilities,
                                                     title)
  figures['confidently_wrong'] = pictures.draw_confidently_wrong(test.images, test.labels,
                                                                 probabilities, title)
  if 'conv0' in run.params:
    figures['filters'] = pictures.draw_filters(np.asarray(run.params['conv0']['kernel']),
                                               'conv0', title)
    digit = test.images[ACTIVATION_DIGIT]
    maps = {name: value[0] for name, value in run.intermediates(digit[None]).items()
            if name.startswith(('conv', 'pool')) and value.ndim == 4}
    figures['activations'] = pictures.draw_activations(
        digit, int(test.labels[ACTIVATION_DIGIT]), maps, title)
  return figures


class PictureWriter:
  """Draws and writes one run's pictures off the training thread."""

  def __init__(self, workdir: str, events, title: str, when: str):
    self.directory = os.path.join(workdir, DIRECTORY)
    self.events, self.title, self.when = events, title, when
    self._pending: list[futures.Future] = []

  def epoch(self, step: int, history: list[dict], final: dict[str, dict]) -> None:
    if self.when == 'epochs':
      history = [dict(record) for record in history]  # the record goes on changing
      self._submit(step, lambda: epoch_figures(history, final, self.title))

  def end(self, step: int, draw: Callable[[str], dict[str, Any]]) -> None:
    """draw(title) -> {name: figure}; called in the worker."""
    if self.when != 'none':
      self._submit(step, lambda: draw(self.title))

  def _submit(self, step: int, draw: Callable[[], dict[str, Any]]) -> None:
    self._pending.append(_worker().submit(self._write, step, draw))

  def _write(self, step: int, draw: Callable[[], dict[str, Any]]) -> None:
    rendered = {name: pictures.render(figure) for name, figure in draw().items()}
    if not rendered:
      return
    os.makedirs(self.directory, exist_ok=True)
    for name, (png, _, _) in rendered.items():
      path = os.path.join(self.directory, f'{name}.png')
      with open(path + '.tmp', 'wb') as f:
        f.write(png)
      os.replace(path + '.tmp', path)
    self.events.write_images(step, {TAG_PREFIX + name: image for name, image in rendered.items()})

  def close(self, raise_errors: bool = True) -> None:
    """Waits for this run's pictures; a drawing error surfaces here rather than vanishing."""
    pending, self._pending = self._pending, []
    futures.wait(pending)
    if raise_errors:
      for future in pending:
        future.result()
