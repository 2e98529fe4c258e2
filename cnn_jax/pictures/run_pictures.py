"""Which pictures a run gets, and when: PNG files in `<workdir>/pictures/` and the same
images in the run's TensorBoard events (tag `pictures/<name>`).

At each epoch end (train.pictures='epochs') the cheap ones, drawn from host numbers the
record already holds: the learning curves and each evaluated split's confusion matrix. At
the end of the run (also with 'end') every picture, from the trained parameters: the test
digits with their predictions, the most confidently wrong ones, the first-layer filters and
one test digit's activation maps, and, when the run augments its batches, a few training digits
with augmentations of each. 'none' draws nothing.

Drawing runs in one worker thread shared by every run of the process (matplotlib is not
made to draw from several threads at once; a vmapped group has several runs), so the
training loop never waits for matplotlib (on 2 cores the thread does take CPU time from it:
about a second per epoch-end drawing); a record waits for its own pictures only when the run
ends. An epoch drawing that has not started when the next one comes is dropped, and the last
epoch is drawn by the end drawing, so the queue never grows. A picture that fails to draw is
logged as an error and the run finishes and records its results all the same.
"""
from __future__ import annotations

from concurrent import futures
import os
import re
from typing import Any, Callable

from absl import logging
import numpy as np

from cnn_jax import atomic_files
from cnn_jax import trained
from cnn_jax.data import augment
from cnn_jax.engine import observers
from cnn_jax.pictures import canvas
from cnn_jax.pictures import charts
from cnn_jax.pictures import grids

DIRECTORY = 'pictures'
TAG_PREFIX = 'pictures/'
ACTIVATION_DIGIT = 0  # the test image whose activation maps are drawn: the first
ACTIVATION_LAYERS = re.compile(r'(conv|pool)\d+')  # convolutions and poolings, not dropout
AUGMENTED_DIGITS, AUGMENTED_COPIES = 8, 4  # the first training digits, each augmented 4 times
# Every picture, in the order a report shows them, with its caption there.
CAPTIONS = {
    'learning_curves': 'Learning curves',
    'confusion_validation': 'Confusion matrix and per-class accuracy (validation)',
    'confusion_test': 'Confusion matrix and per-class accuracy (test)',
    'augmented': 'Training digits and augmentations of each',
    'predictions': 'Test digits and their predictions',
    'confidently_wrong': 'The most confidently wrong test digits',
    'filters': 'First-layer filters',
    'activations': 'Activation maps of one test digit',
}
_WORKER: futures.ThreadPoolExecutor | None = None


def _worker() -> futures.ThreadPoolExecutor:
  """The process's drawing thread, started by the first picture."""
  global _WORKER
  if _WORKER is None:
    _WORKER = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='pictures')
  return _WORKER


def title_of(config, workdir: str, step: int) -> str:
  return f'{config.model.name} ({os.path.basename(os.path.normpath(workdir))}, step {step:,})'


def save(directory: str, rendered: dict[str, tuple[bytes, int, int]]) -> None:
  """Writes {name: (PNG, height, width)} as <directory>/<name>.png, each atomically (a
  report may be reading them)."""
  atomic_files.make_dirs(directory)
  for name, (png, _, _) in rendered.items():
    atomic_files.write_bytes(os.path.join(directory, f'{name}.png'), png)


def epoch_figures(history: list[dict], final: dict[str, dict], title: str) -> dict[str, Any]:
  """The pictures drawn from numbers alone: learning curves and confusion matrices."""
  figures = {}
  if history:
    figures['learning_curves'] = charts.draw_learning_curves(history, title)
  for split, values in sorted(final.items()):
    if 'confusion' in values:
      figures[f'confusion_{split}'] = charts.draw_confusion(values['confusion'], split, title)
  return figures


def augmented_figures(config, train, title: str) -> dict[str, Any]:
  """The training digits and augmentations of each (`train`: the train Split), drawn with
  the config's strengths from its seed; nothing when the config does not augment (or predates
  config.augment)."""
  section = config.get('augment')
  on = augment.active(section) if section is not None else frozenset()
  if not on:
    return {}
  images, labels = train.images[:AUGMENTED_DIGITS], train.labels[:AUGMENTED_DIGITS]
  shown = augment.examples(section, config.seed, images, AUGMENTED_COPIES)
  described = ', '.join(f'{field}={section[field]:g}' for field in augment.FIELDS
                        if section[field] > 0 and (field != 'elastic_sigma' or 'elastic' in on))
  return {'augmented': grids.draw_augmented(images, shown, labels, described, title)}


def end_figures(run, test, history: list[dict], final: dict[str, dict], title: str,
                train=None):
  """Every picture of a trained run (`run`: a trained.TrainedRun; `test`: the test Split;
  `train`: the train Split, for the augmented digits; None leaves them out)."""
  figures = epoch_figures(history, final, title)
  if train is not None:
    figures.update(augmented_figures(run.config, train, title))
  probabilities = run.predict(test.images)
  figures['predictions'] = grids.draw_predictions(test.images, test.labels, probabilities,
                                                  title)
  figures['confidently_wrong'] = grids.draw_confidently_wrong(test.images, test.labels,
                                                              probabilities, title)
  if 'conv0' in run.params:
    figures['filters'] = grids.draw_filters(np.asarray(run.params['conv0']['kernel']),
                                            'conv0', title)
    digit = test.images[ACTIVATION_DIGIT]
    maps = {name: value[0] for name, value in run.intermediates(digit[None]).items()
            if ACTIVATION_LAYERS.fullmatch(name)}
    figures['activations'] = grids.draw_activations(
        digit, int(test.labels[ACTIVATION_DIGIT]), maps, title)
  return figures


class PictureWriter:
  """Draws and writes one run's pictures off the training thread."""

  def __init__(self, workdir: str, events, config, when: str, who: str = ''):
    self.workdir, self.directory = workdir, os.path.join(workdir, DIRECTORY)
    self.events, self.config, self.when, self.who = events, config, when, who
    self._pending: list[futures.Future] = []

  def epoch(self, step: int, history: list[dict], final: dict[str, dict], last: bool) -> None:
    """The pictures of an epoch end; the last epoch's come with the end drawing."""
    if self.when == 'epochs' and not last:
      history = list(history)  # the run appends to its list; this drawing sees this epoch's
      self._submit(step, lambda title: epoch_figures(history, final, title))

  def end(self, step: int, draw: Callable[[str], dict[str, Any]]) -> None:
    """draw(title) -> {name: figure}, called in the worker."""
    if self.when != 'none':
      self._submit(step, draw)

  def _submit(self, step: int, draw: Callable[[str], dict[str, Any]]) -> None:
    for superseded in self._pending:
      superseded.cancel()  # only succeeds if it has not started: then it is not needed
    self._pending = [f for f in self._pending if not f.done()]
    self._pending.append(_worker().submit(self._write, step, draw))

  def _write(self, step: int, draw: Callable[[str], dict[str, Any]]) -> None:
    try:
      figures = draw(title_of(self.config, self.workdir, step))
      rendered = {name: canvas.render(figure) for name, figure in figures.items()}
      if rendered:
        save(self.directory, rendered)
        self.events.write_images(step, {TAG_PREFIX + name: image
                                        for name, image in rendered.items()})
    except Exception:  # pylint: disable=broad-except  (a picture never costs a run's results)
      logging.exception('%sPictures at step %d were not drawn:', self.who, step)

  def close(self, cancel: bool = False) -> None:
    """Waits for this run's pictures (after an error elsewhere: only for the one drawing)."""
    pending, self._pending = self._pending, []
    if cancel:
      for future in pending:
        future.cancel()
    futures.wait(pending)


class PictureObserver(observers.Observer):
  """A run's pictures, drawn from what the training loop tells its observers
  (engine/observers.py): the epoch pictures at each epoch end, every picture when the run
  ends (only the pictures of its numbers when it did not train to the end)."""

  def __init__(self):
    self._writer: PictureWriter | None = None

  def _writer_for(self, event) -> PictureWriter:
    if self._writer is None:
      self._writer = PictureWriter(event.workdir, event.events, event.config,
                                   event.config.train.pictures, event.who)
    return self._writer

  def epoch_end(self, event: observers.EpochEnd) -> None:
    self._writer_for(event).epoch(event.step, list(event.history), event.evaluated,
                                  last=event.epoch >= event.total_epochs)

  def run_end(self, event: observers.RunEnd) -> None:
    history, final = list(event.history), event.final
    if event.params is None:
      draw = lambda title: {**epoch_figures(history, final, title),
                            **augmented_figures(event.config, event.splits.train, title)}
    else:
      run = trained.TrainedRun.from_params(event.config, event.params,
                                           event.splits.image_shape,
                                           model_state=event.model_state)
      draw = lambda title: end_figures(run, event.splits.test, history, final, title,
                                       event.splits.train)
    self._writer_for(event).end(event.step, draw)

  def close(self, cancel: bool = False) -> None:
    """Waits for this run's pictures; a picture that failed was logged, and the run's results
    still count."""
    if self._writer is not None:
      self._writer.close(cancel)
