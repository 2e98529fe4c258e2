"""TensorBoard event files: scalars and the run's hyperparameters (HParams dashboard).

TensorFlow is already a dependency (TFDS needs it to read prepared datasets), so its summary
writer is used directly rather than adding another event-file library.
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections


class EventWriter:
  """Writes scalars and hparams to `logdir` (created if needed)."""

  def __init__(self, logdir: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.set_visible_devices([], 'GPU')
    self._tf = tf
    self._writer = tf.summary.create_file_writer(logdir)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    with self._writer.as_default():
      for tag, value in scalars.items():
        self._tf.summary.scalar(tag, float(value), step=int(step))

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
    with self._writer.as_default():
      hp.hparams(dict(hparams))

  def write_hparams_config(self, domains: Mapping[str, list], metric_tags: list[str]) -> None:
    """The sweep-level experiment: each swept hparam with its values, and the metrics."""
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
    with self._writer.as_default():
      hp.hparams_config(
          hparams=[hp.HParam(name, hp.Discrete(values)) for name, values in domains.items()],
          metrics=[hp.Metric(tag) for tag in metric_tags])

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


def flatten_hparams(config: ml_collections.ConfigDict, prefix: str = '') -> dict[str, Any]:
  """Config -> {'model.activation': 'relu', ...} with values the HParams plugin accepts
  (bool, int, float, str); tuples become their string form, e.g. '(8, 16)'."""
  flat = {}
  for key, value in config.items():
    name = f'{prefix}{key}'
    if isinstance(value, ml_collections.ConfigDict):
      flat.update(flatten_hparams(value, name + '.'))
    else:
      flat[name] = hparam_value(value)
  return flat


def hparam_value(value: Any):
  """A config value as the HParams plugin stores it: tuples become their string form."""
  if isinstance(value, (bool, int, float, str)):
    return value
  return str(tuple(value) if isinstance(value, list) else value)
