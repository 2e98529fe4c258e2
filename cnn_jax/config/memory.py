"""The memory a training run needs, estimated from its config's shapes, against what the
device has: the last check of config/validation.py, and a vmapped group's (engine/plan.py), so
that an oversized model is one line with its parameter count rather than an XLA out-of-memory
error."""
from __future__ import annotations

import math
import os

from cnn_jax.data import datasets
from cnn_jax.errors import ConfigError
from cnn_jax.model import shapes
from cnn_jax.optim import optimizers


def memory_needed(config, members: int = 1, dataset: datasets.DatasetInfo | None = None
                  ) -> tuple[int, int]:
  """(parameters per member, bytes a training run needs), estimated from the shapes: the
  float32 parameters, their gradients and optimizer slots, the activations of one batch
  (forward and backward), and the uint8 dataset on the device. `dataset`: the config's
  (datasets.info), when the caller has it."""
  dataset = dataset or datasets.info(config.data)
  params = shapes.count_params(config.model, dataset.image_shape)
  copies = 2 + optimizers.STATE_SLOTS[config.optimizer.name]
  activations = sum(math.prod(layer.output_shape)
                    for layer in shapes.infer_layer_shapes(config.model, dataset.image_shape))
  batch = max(config.train.batch_size, config.train.eval_batch_size)
  per_member = 4 * (copies * params + 3 * batch * activations)
  data_bytes = math.prod(dataset.image_shape) * sum(dataset.split_sizes.values())
  return params, members * per_member + data_bytes


def available_memory() -> tuple[int, str]:
  """(bytes, description) the first local device can hold: its free memory on an
  accelerator, the host's available memory on CPU."""
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.local_devices()[0]
  stats = device.memory_stats() if device.platform != 'cpu' else None
  if stats and 'bytes_limit' in stats:
    return stats['bytes_limit'] - stats.get('bytes_in_use', 0), f'the {device.device_kind}'
  with open('/proc/meminfo') as f:
    info = dict(line.split(':', 1) for line in f)
  return int(info['MemAvailable'].split()[0]) * 1024, 'this machine (cpu)'


def check_fits_in_memory(config, members: int = 1,
                         dataset: datasets.DatasetInfo | None = None) -> None:
  if not os.path.exists('/proc/meminfo'):
    return  # not Linux: no cheap way to ask; XLA reports it if it comes to that
  params, needed = memory_needed(config, members, dataset)
  available, where = available_memory()
  if needed > available:
    group = f' x {members} members' if members > 1 else ''
    raise ConfigError(
        f'model: {params:,} parameters{group} need about {_gb(needed)} to train '
        f'(parameters, gradients, {config.optimizer.name} state and activations at batch '
        f'{config.train.batch_size}) but {where} has {_gb(available)} available; make '
        f'model.conv_features or model.hidden_dims smaller, or pool more before the dense '
        f'layers')


def _gb(size: int) -> str:
  return f'{size / 1e9:,.1f} GB'
