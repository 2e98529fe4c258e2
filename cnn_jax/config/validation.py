"""`validate(config)`: every field of every section, checked once, before any data is read.

The rest of the code trusts a validated config: the model, optimizer, data and loop modules
build what it says without checking again. Each failure is a ConfigError whose message names
the field, the value and what is allowed, so the command line can print it as one line.

Every field is checked by one generic check (`check_field`) against what the field table
(config/fields.py) declares it may hold: its type, its choices (read there from the modules
that implement them: model.cnn.ACTIVATIONS, ...) or its range (a ranges.Range, whose bounds
known only with the dataset are given here). What is left in each section's function is the
rules between fields, and between fields and the dataset or machine. What a config needs of
its dataset (image shape, class count, split sizes) comes from the prepared dataset's own JSON
files (data/datasets.info), read before any image; a dataset that is not prepared is a
DatasetNotFoundError of one line.

The last check estimates the memory a run needs (parameters, gradients, optimizer state and
activations, from the shapes alone) against what the device has, so an oversized model is a
message with its parameter count rather than an XLA out-of-memory error.
"""
from __future__ import annotations

import importlib.util
import math
import os

from cnn_jax.config import fields
from cnn_jax.data import augment
from cnn_jax.data import datasets
from cnn_jax.errors import ConfigError
from cnn_jax.layer_impls import choice
from cnn_jax.layer_impls import implementations
from cnn_jax.model import shapes
from cnn_jax.optim import optimizers


def validate(config, members: int = 1) -> None:
  """Raises ConfigError for the first field that cannot work (DatasetNotFoundError when the
  dataset is not prepared). `members`: how many runs of this shape train together (a vmapped
  sweep group), for the memory check."""
  check_field(fields.BY_PATH['seed'], config.seed)
  # The sections that need nothing of the dataset first: their mistakes show even where the
  # dataset is not prepared.
  validate_optimizer(config.optimizer)
  validate_sweep(config.sweep)
  dataset = validate_data(config.data)
  validate_model(config.model, dataset.image_shape, dataset.num_classes)
  if 'augment' not in config:
    raise ConfigError('the config has no augment section; experiments start from '
                      'experiments/default.py, which has one (every strength 0: off)')
  validate_augment(config.augment, dataset.image_shape)
  validate_train(config.train, config.data, dataset)
  validate_determinism(config.train, config.model)
  check_fits_in_memory(config, members, dataset)


def check_section(section_cfg, section: str, limits: dict | None = None) -> None:
  """Each field of `section` (a ConfigDict or a dict) against the field table, in its order.
  `limits`: {name: value} of the range bounds known only with the dataset."""
  for field in fields.of_section(section):
    check_field(field, section_cfg[field.name], limits)


def check_field(field: fields.Field, value, limits: dict | None = None) -> None:
  """The one check of what a field may hold, as config/fields.py declares it."""
  if not isinstance(field.default, tuple):
    _check_value(field, field.path, value, limits)
    return
  if not isinstance(value, (tuple, list)):
    per_layer = ' with one entry per conv layer' if field.per_conv_layer else ''
    raise ConfigError(f'{field.path}={value!r} must be a tuple{per_layer}')
  for i, entry in enumerate(value):
    _check_value(field, f'{field.path}[{i}]', entry, limits)


def _check_value(field: fields.Field, path: str, value, limits) -> None:
  if field.choices:
    if value not in tuple(field.choices):
      notes = field.choices if isinstance(field.choices, dict) else {}
      allowed = ('; ' if notes else ', ').join(
          f'{choice} ({notes[choice]})' if notes else str(choice) for choice in field.choices)
      raise ConfigError(f'{path}={value!r} is not supported; allowed values: {allowed}')
  elif field.range is not None:
    allowed = field.range
    number = _integer(path, value) if allowed.integer else _number(path, value)
    low, high = ((limits or {})[b] if isinstance(b, str) else b
                 for b in (allowed.low, allowed.high))
    if not allowed.holds(number, low, high):
      raise ConfigError(f'{path}={value!r} must {allowed.refusal(low, high)}')
  elif field.check is not None:
    field.check(value, path)
  elif not isinstance(value, type(field.default)):
    raise ConfigError(f'{path}={value!r} must be of type {type(field.default).__name__}')


# ---- each section: the generic check, then the rules between fields (X only with Y) ----


def validate_determinism(train_cfg, model_cfg) -> None:
  """train.deterministic runs max pooling as 'reshape' (XLA's deterministic ops refuse its
  own max-pool gradient, select-and-scatter), which computes only window == stride."""
  check_field(fields.BY_PATH['train.deterministic'], train_cfg.deterministic)
  if not train_cfg.deterministic:
    return
  for i, pool in enumerate(model_cfg.pool_type):
    if pool != 'max':
      continue
    if model_cfg.pool_window[i] != model_cfg.pool_strides[i]:
      raise ConfigError(
          f'train.deterministic=True needs max pools with window == stride (pool{i}: window '
          f'{model_cfg.pool_window[i]}, stride {model_cfg.pool_strides[i]}): XLA\'s '
          "deterministic ops refuse XLA's own max-pool gradient")
    if model_cfg.pool_impl not in (choice.AUTO, 'reshape'):
      raise ConfigError(f'train.deterministic=True runs max pools as \'reshape\'; '
                        f'model.pool_impl={model_cfg.pool_impl!r}: allowed values auto, reshape')


def validate_data(data_cfg, dataset: datasets.DatasetInfo | None = None
                  ) -> datasets.DatasetInfo:
  """The data section's fields, then the dataset they name (`dataset`, or read with
  datasets.info from its prepared dataset_info.json and features.json); returns it."""
  check_section(data_cfg, 'data')
  if not datasets.NAME_PATTERN.fullmatch(data_cfg.name):
    raise ConfigError(f'data.name={data_cfg.name!r} is not a TFDS dataset name: letters, '
                      "digits and '_', optionally '/<builder config>' (mnist, cifar10, ...)")
  if data_cfg.validation == 'none' and data_cfg.num_validation:
    raise ConfigError(f'data.num_validation={data_cfg.num_validation} but data.validation '
                      f"is 'none'; pick a validation mode "
                      f'({", ".join(datasets.VALIDATION_MODES)}) or set data.num_validation=0')
  dataset = dataset or datasets.info(data_cfg)
  if data_cfg.validation == 'none':
    return dataset
  source = 'test' if data_cfg.validation == 'test_stratified' else 'train'
  size = dataset.split_sizes[source]
  if not 0 < data_cfg.num_validation < size:
    raise ConfigError(f'data.num_validation={data_cfg.num_validation} must lie between 1 and '
                      f'{size - 1} (the {source} split of {data_cfg.name} has {size} images)')
  return dataset


def validate_model(model_cfg, input_shape=(28, 28, 1), num_classes=None) -> None:
  check_section(model_cfg, 'model')
  num_layers = len(model_cfg.conv_features)
  for field in fields.of_section('model'):
    values = model_cfg[field.name]
    if field.per_conv_layer and len(values) != num_layers:
      raise ConfigError(
          f'{field.path}={values!r} must be a tuple with one entry per conv layer: '
          f'model.conv_features={tuple(model_cfg.conv_features)!r} has {num_layers}')
  if num_classes is not None and model_cfg.num_classes != num_classes:
    raise ConfigError(f'model.num_classes={model_cfg.num_classes} but the dataset has '
                      f'{num_classes} classes')
  for i, pool in enumerate(model_cfg.pool_type):
    exact = implementations.pool_impls_for(model_cfg.pool_window[i], model_cfg.pool_strides[i])
    if pool != 'none' and model_cfg.pool_impl not in (choice.AUTO, *exact):
      raise ConfigError(
          f'model.pool_impl={model_cfg.pool_impl!r} cannot compute pool{i} (window '
          f'{model_cfg.pool_window[i]}, stride {model_cfg.pool_strides[i]}); allowed values '
          f'for this model: {", ".join((choice.AUTO, *exact))}')
  shapes.infer_layer_shapes(model_cfg, input_shape)  # a layer shrunk to nothing names itself


def validate_optimizer(opt_cfg) -> None:
  check_section(opt_cfg, 'optimizer')


def validate_train(train_cfg, data_cfg, dataset: datasets.DatasetInfo) -> None:
  num_train = dataset.split_sizes['train']
  if data_cfg.validation in ('train_head', 'train_random'):
    num_train -= data_cfg.num_validation
  check_section(train_cfg, 'train', {fields.TRAINING_IMAGES: num_train})
  # A call ends at every log step and evaluation (engine/loop.py), so more steps than that
  # would never run in one call.
  longest_call = min(n for n in (train_cfg.log_every_steps, train_cfg.eval_every_steps) if n)
  if train_cfg.steps_per_call > longest_call:
    raise ConfigError(f'train.steps_per_call={train_cfg.steps_per_call} must be between 0 '
                      f'and {longest_call}: a call ends at every log step '
                      f'(train.log_every_steps={train_cfg.log_every_steps}) and evaluation '
                      f'(train.eval_every_steps={train_cfg.eval_every_steps})')
  if train_cfg.pictures != 'none' and importlib.util.find_spec('matplotlib') is None:
    raise ConfigError(f'train.pictures={train_cfg.pictures!r} needs matplotlib, which is not '
                      "installed; pip install matplotlib, or set train.pictures='none'")
  if train_cfg.num_devices:
    import jax  # pylint: disable=g-import-not-at-top  (after launch.py chose the allocator)
    available = jax.device_count()  # every process's (engine/distributed.py)
    if train_cfg.num_devices > available:
      raise ConfigError(f'train.num_devices={train_cfg.num_devices} but there are '
                        f'{available} {jax.default_backend()} device(s)')
    if train_cfg.batch_size % train_cfg.num_devices:
      raise ConfigError(f'train.batch_size={train_cfg.batch_size} does not split evenly over '
                        f'train.num_devices={train_cfg.num_devices}; pick a divisor of the '
                        f'batch size, or 0 to use as many devices as divide it')


def validate_augment(augment_cfg, image_shape=(28, 28, 1)) -> None:
  # An experiment file may add a field by assignment (a misspelt config.augment.rotation=10
  # would otherwise train without rotations).
  unknown = sorted(set(augment_cfg) - set(augment.FIELDS))
  missing = [field for field in augment.FIELDS if field not in augment_cfg]
  if unknown or missing:
    what = f'unknown field {unknown[0]!r}' if unknown else f'no field {missing[0]!r}'
    raise ConfigError(f'augment has {what}; its fields: {", ".join(augment.FIELDS)}')
  check_section(augment_cfg, 'augment', {augment.SIDE: min(image_shape[:2]),
                                         augment.LONGEST: max(image_shape[:2])})


def validate_sweep(sweep_cfg) -> None:
  check_section(sweep_cfg, 'sweep')


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


def _integer(field, value) -> int:
  if isinstance(value, bool) or not isinstance(value, int):
    raise ConfigError(f'{field}={value!r} must be an integer')
  return value


def _number(field, value) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
    raise ConfigError(f'{field}={value!r} must be a number')
  if math.isinf(value):  # no field means anything by it (a learning rate of inf is NaN later)
    raise ConfigError(f'{field}={value!r} must be a finite number')
  return value
