"""TensorBoard event files: scalars, images and the run's hyperparameters (HParams dashboard).

Written with TensorBoard's own event writer and protos, so a run needs no TensorFlow (which
takes seconds to import, and is absent on this project's GPU machine). Scalars are stored as
TensorFlow 2's tf.summary.scalar stores them (a float tensor tagged for the scalars plugin),
so TensorBoard, EventAccumulator and tbparse read them as before. (TensorBoard's own
EventFileWriter would import TensorFlow through tf.io.gfile whenever it is installed; its
TFRecord RecordWriter on a plain file does not.)
"""
from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from typing import Any, Mapping

import ml_collections
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.compat.proto import tensor_pb2
from tensorboard.compat.proto import tensor_shape_pb2
from tensorboard.compat.proto import types_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.summary.writer import record_writer

from cnn_jax import atomic_files
from cnn_jax.config import paths

_FILE_NUMBERS = itertools.count()  # two writers in one second and process get two files
_SCALARS_PLUGIN = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'))


class EventWriter:
  """Writes scalars and hparams to `logdir` (created if needed)."""

  def __init__(self, logdir: str):
    atomic_files.make_dirs(logdir)
    name = (f'events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.'
            f'{os.getpid()}.{next(_FILE_NUMBERS)}')
    self.path = os.path.join(logdir, name)
    self._failed = False
    self._lock = threading.Lock()  # pictures are written from a worker thread
    with self._writing():
      self._file = open(self.path, 'wb')
    self._records = record_writer.RecordWriter(self._file)
    self._add(event_pb2.Event(wall_time=time.time(), file_version='brain.Event:2'))

  @contextlib.contextmanager
  def _writing(self):
    """A failed write (a full disk) as DiskError. The events file is a stream, not written
    whole: TensorBoard reads it up to a record cut short, and a resumed run starts a new
    file."""
    try:
      yield
    except OSError as error:
      self._failed = True
      raise atomic_files.DiskError(self.path, error) from None

  def _add(self, event: event_pb2.Event) -> None:
    with self._lock, self._writing():
      self._records.write(event.SerializeToString())

  def _write(self, summary: summary_pb2.Summary, step: int = 0) -> None:
    self._add(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    values = [summary_pb2.Summary.Value(
        tag=tag, metadata=_SCALARS_PLUGIN,
        tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[float(value)],
                                      tensor_shape=tensor_shape_pb2.TensorShapeProto()))
              for tag, value in scalars.items()]
    self._write(summary_pb2.Summary(value=values), step)

  def write_images(self, step: int, images: Mapping[str, tuple[bytes, int, int]]) -> None:
    """{tag: (PNG bytes, height, width)}, as image summaries (TensorBoard's Images tab)."""
    values = [summary_pb2.Summary.Value(tag=tag, image=summary_pb2.Summary.Image(
        height=height, width=width, colorspace=4, encoded_image_string=png))  # 4: RGBA
              for tag, (png, height, width) in images.items()]
    self._write(summary_pb2.Summary(value=values), step)
    self.flush()

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    self._write(hparams_summary.hparams_pb(dict(hparams)))

  def write_hparams_config(self, domains: Mapping[str, Any], metric_tags: list[str]) -> None:
    """The sweep-level experiment: each swept hparam with its values (a list) or its range
    (an HParams Domain such as RealInterval), and the metrics."""
    self._write(hparams_summary.hparams_config_pb(
        hparams=[hparams_summary.HParam(name, hparams_summary.Discrete(values)
                                        if isinstance(values, (list, tuple)) else values)
                 for name, values in domains.items()],
        metrics=[hparams_summary.Metric(tag) for tag in metric_tags]))

  def flush(self) -> None:
    with self._lock, self._writing():
      self._file.flush()

  def close(self) -> None:
    """Closes the file; after a failed write, quietly (its DiskError was raised already)."""
    with self._lock:
      if self._failed:
        try:
          self._file.close()
        except OSError:
          pass
        return
      with self._writing():
        self._file.close()


class NoEvents:
  """An EventWriter that writes nothing (processes other than 0 of a distributed run)."""

  def __getattr__(self, name):
    return lambda *args, **kwargs: None


def flatten_hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Config -> {'model.activation': 'relu', ...} with values the HParams plugin accepts
  (bool, int, float, str); tuples become their string form, e.g. '(8, 16)'."""
  return paths.flatten(config, leaf=hparam_value)


def hparam_value(value: Any):
  """A config value as the HParams plugin stores it: tuples become their string form."""
  if isinstance(value, (bool, int, float, str)):
    return value
  return str(tuple(value) if isinstance(value, list) else value)
