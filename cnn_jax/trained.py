"""A trained run, used from Python: its config, results and parameters, and the network
applied to images.

    from cnn_jax import trained
    run = trained.load('runs/pool-1a2b3c4d')
    probabilities = run.predict(images)     # (N, 10), or (10,) for one image
    maps = run.intermediates(images[:8])    # {'conv0': (8, 28, 28, 8), 'pool0': ..., ...}

`load` reads a run directory (config.json, results.json when the run finished, the latest
checkpoint); `TrainedRun.from_params` wraps parameters held in memory, e.g. at the end of a
training run that keeps no checkpoint. predict, logits and intermediates run XLA's own layers
(no layer timing on load); they agree with the layers a run trained with to float tolerance
(layer_impls/implementations.py), so a near-tie may round the other way. `evaluate` scores
a split through the engine's own eval program with the layers the run recorded, as training
evaluated it: the figures come out as results.json has them.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnn_jax import atomic_files
from cnn_jax.config import files
from cnn_jax.config import validation
from cnn_jax.data import datasets
from cnn_jax.engine import checkpoint
from cnn_jax.engine import compilation_cache
from cnn_jax.engine import metrics
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import program as program_lib
from cnn_jax.engine import results as results_lib
from cnn_jax.engine import run_record
from cnn_jax.engine import step as step_lib
from cnn_jax.errors import ConfigError
from cnn_jax.errors import InputError
from cnn_jax.errors import RunDirectoryError
from cnn_jax.layer_impls import choice
from cnn_jax.model import cnn
from cnn_jax.model import shapes

PREDICT_BATCH_SIZE = 1000  # images per call of the forward function; the last is padded


@dataclasses.dataclass(eq=False)
class TrainedRun:
  """A run's config, results.json record (None before it finished), parameters (the
  checkpoint's, at `step`), and its data's image shape and class count. The forward function
  of predict, logits and intermediates is built from the config at the first call."""
  workdir: str | None
  config: ml_collections.ConfigDict
  results: dict[str, Any] | None
  params: Any
  step: int
  image_shape: tuple
  num_classes: int
  model_state: Any = dataclasses.field(default_factory=dict)  # batch statistics, if any

  @classmethod
  def from_params(cls, config: ml_collections.ConfigDict, params, image_shape=None, *,
                  model_state=None, step: int = 0, results: dict[str, Any] | None = None,
                  workdir: str | None = None) -> 'TrainedRun':
    """A run from parameters (and model state: batch statistics) in memory (a validated
    config; image_shape defaults to its dataset's)."""
    image_shape = tuple(image_shape or datasets.info(config.data).image_shape)
    return cls(workdir, config, results, params, int(step), image_shape,
               config.model.num_classes, dict(model_state or {}))

  # ---- the network applied to images (XLA's own layers) ----

  def predict(self, images) -> np.ndarray:
    """Class probabilities (softmax): (N, classes) for a batch, (classes,) for one image.

    images: uint8 (0..255, scaled by 1/255 as in training) or float in [0, 1], of the data's
    shape: (H, W, C) or (N, H, W, C), and for one-channel data also (H, W) or (N, H, W)."""
    return self._apply(images, 'probabilities')

  def logits(self, images) -> np.ndarray:
    """The output layer's values, before the softmax; images as for predict."""
    return self._apply(images, 'logits')

  def intermediates(self, images) -> dict[str, np.ndarray]:
    """Every layer's output (conv0, pool0, conv1, ..., flatten, logits: the names of
    model/shapes.infer_layer_shapes, in layer order), each with the batch axis first, or
    without it for one image; images as for predict."""
    return self._apply(images, 'intermediates')

  def _apply(self, images, output: str):
    batch, single = self._checked_batch(images)
    n = len(batch)
    size = max(1, min(PREDICT_BATCH_SIZE, n))
    total = max(1, -(-n // size)) * size  # one call at least: no images still have shapes
    padded = np.concatenate([batch, np.zeros((total - n, *batch.shape[1:]), batch.dtype)])
    with_intermediates = output == 'intermediates'
    variables = {'params': self.params, **self.model_state}
    parts = [self._forward(variables, padded[i:i + size], with_intermediates)
             for i in range(0, len(padded), size)]
    found = jax.tree_util.tree_map(lambda *p: np.concatenate(p)[:n],
                                   *[part[output] for part in jax.device_get(parts)])
    if single:
      found = jax.tree_util.tree_map(lambda a: a[0], found)
    if with_intermediates:  # pytrees come back in sorted key order: put the layers in order
      found = {layer.name: found[layer.name + cnn.OUTPUT_SUFFIX][0]  # sow keeps a tuple
               for layer in shapes.infer_layer_shapes(self.config.model, self.image_shape)}
    return found

  @functools.cached_property
  def _forward(self):
    """One jitted forward function (compiled per batch shape and input dtype)."""
    compilation_cache.enable()
    model = cnn.build_model(self.config.model)  # impls None: XLA's own layers

    def forward(variables, images, with_intermediates: bool):
      x = step_lib.to_float(images) if images.dtype == jnp.uint8 else images
      if with_intermediates:
        logits, state = model.apply(variables, x, train=False, mutable=['intermediates'])
        sown = state['intermediates']
      else:
        logits, sown = model.apply(variables, x, train=False), {}
      logits = logits.astype(jnp.float32)
      return {'logits': logits, 'probabilities': jax.nn.softmax(logits),
              'intermediates': sown}
    return jax.jit(forward, static_argnums=2)

  def _checked_batch(self, images) -> tuple[np.ndarray, bool]:
    """(images as (N, H, W, C) uint8 or float32, whether one image was given), or an
    InputError naming what was given and what is allowed."""
    array = np.asarray(images)
    height, width, channels = self.image_shape
    one = [(height, width, channels)] + ([(height, width)] if channels == 1 else [])
    if array.shape in one:
      single = True
    elif array.shape[1:] in one:
      single = False
    else:
      shown = lambda shape: '(' + ', '.join(map(str, shape)) + ')'
      raise InputError(
          f'images of shape {array.shape} do not fit this run\'s {height}x{width}x{channels} '
          f'images; allowed shapes: {" or ".join(shown(s) for s in one)} for one image, '
          f'{" or ".join(shown(("N", *s)) for s in one)} for a batch')
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
      raise InputError(f'images of dtype {array.dtype} are not allowed; allowed: uint8 '
                       '(0..255) or float16/32/64 in [0, 1]')
    if array.dtype != np.uint8:
      inside = (array >= 0) & (array <= 1)  # False for NaN too
      if not inside.all():
        found = ('NaN' if np.isnan(array).any()
                 else f'values from {array.min()} to {array.max()}')
        raise InputError(f'float images must hold values in [0, 1] (uint8 images 0..255); '
                         f'these hold {found}')
      array = array.astype(np.float32, copy=False)
    return array.reshape((1 if single else len(array), height, width, channels)), single

  # ---- the engine's evaluation (the layers the run recorded) ----

  @property
  def layer_impls(self) -> choice.LayerImpls | None:
    """The layer implementations results.json records the run ran with (None without)."""
    described = ((self.results or {}).get('executor') or {}).get('layers')
    if described is None:
      return None
    impls = choice.LayerImpls.from_description(described)
    if len(impls.conv) != len(self.config.model.conv_features):
      raise ConfigError(f'executor.layers={described!r} in results.json does not describe '
                        f'the {len(self.config.model.conv_features)} conv layers of the config')
    return impls

  def evaluate(self, split: datasets.Split, batch_size: int | None = None) -> dict[str, Any]:
    """The eval metrics of `split` ({'loss', 'error', 'accuracy', 'confusion'}, as in
    results.json's 'final'), computed as training computes them: engine/program.py's eval
    program on the run's placement, at train.eval_batch_size (or `batch_size`), with the
    layers results.json records (without a record, those the config resolves to: on the
    machine that trained it, the same cached choice)."""
    train_cfg = self.config.train
    # A run trained on more devices than this machine has: all of this one's.
    num_devices = train_cfg.num_devices if train_cfg.num_devices <= jax.local_device_count() else 0
    program = program_lib.Program(plan_lib.for_evaluation(self.config, self.image_shape,
                                                          num_devices, self.layer_impls))
    placement = program.placement
    state = program.assemble([{'params': self.params, 'model_state': self.model_state}])
    batch_size = placement.eval_batch_size(batch_size or train_cfg.eval_batch_size)
    padded = program_lib.padded_on_device(split, batch_size, placement.replicated)
    return metrics.finalize(metrics.member(program.evaluate(state, padded, batch_size), 0))


def load(workdir: str) -> TrainedRun:
  """The run in `workdir`: its config.json, results.json (None while it has none) and the
  parameters of its latest checkpoint. Raises RunDirectoryError when the directory, its
  config or its checkpoint is missing."""
  if not os.path.isdir(workdir):
    raise RunDirectoryError(f'{workdir} is not a directory; give the directory of a run '
                            '(its --workdir: config.json, checkpoint.msgpack, results.json)')
  config = read_config(workdir)
  image_shape = dataset_of(workdir, config.data).image_shape
  params, model_state = step_lib.variable_shapes(config.model, image_shape)
  template = {'step': np.int32(0), 'params': params, 'model_state': model_state}
  found = checkpoint.restore(workdir, template)  # the optimizer state is left unread
  if found is None:
    why = ('it ran with train.checkpoint_every_epochs=0, which keeps no parameters'
           if not config.train.checkpoint_every_epochs
           else 'the run has not finished an epoch yet')
    raise RunDirectoryError(f'{workdir} holds no {checkpoint.FILENAME}: {why}')
  state, _ = found
  return TrainedRun.from_params(config, state['params'], image_shape,
                                model_state=state['model_state'], step=int(state['step']),
                                results=results_lib.read(workdir), workdir=workdir)


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """A run directory's config.json as the ConfigDict the run was given (its data and model
  sections validated: what using the run needs; the machine checks of training do not apply)."""
  path = os.path.join(workdir, run_record.CONFIG_FILENAME)
  if not os.path.exists(path):
    raise RunDirectoryError(f'{workdir} holds no {run_record.CONFIG_FILENAME}, so it is not a '
                            'run directory (a run writes it when it starts)')
  try:
    # Fields added since the run was written read as their defaults (what it ran with).
    config = files.from_json(atomic_files.read_json(path))
    dataset = validation.validate_data(config.data, dataset_of(workdir, config.data))
    validation.validate_model(config.model, dataset.image_shape, dataset.num_classes)
  except (ValueError, AttributeError, KeyError) as error:  # JSON, missing or bad fields
    raise ConfigError(f'{path} does not hold a config this code can use '
                      f'({type(error).__name__}: {error})') from error
  return config


def dataset_of(workdir: str, data_cfg) -> datasets.DatasetInfo:
  """The dataset info the run recorded when it started, so that using it needs no prepared
  data; for a run from before the record, its dataset's prepared info."""
  return datasets.read_record(workdir) or datasets.info(data_cfg)
