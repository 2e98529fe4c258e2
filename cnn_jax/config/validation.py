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

The last check estimates the memory a run needs (config/memory.py) against what the device
has, so an oversized model is a message with its parameter count rather than an XLA
out-of-memory error.
"""
from __future__ import annotations

import importlib.util
import math

from cnn_jax.config import fields
from cnn_jax.config import memory
from cnn_jax.data import batches
from cnn_jax.data import augment
from cnn_jax.data import datasets
from cnn_jax.errors import ConfigError
from cnn_jax.layer_impls import choice
from cnn_jax.layer_impls import implementations
from cnn_jax.model import shapes


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
  validate_segments(config, dataset)
  validate_determinism(config.train, config.model)
  memory.check_fits_in_memory(config, members, dataset)


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


def _num_train(data_cfg, dataset: datasets.DatasetInfo) -> int:
  """The training images left once a validation split is taken from them."""
  num_train = dataset.split_sizes['train']
  if data_cfg.validation in ('train_head', 'train_random'):
    num_train -= data_cfg.num_validation
  return num_train


def validate_train(train_cfg, data_cfg, dataset: datasets.DatasetInfo) -> None:
  num_train = _num_train(data_cfg, dataset)
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


def validate_segments(config, dataset: datasets.DatasetInfo) -> None:
  """Piecewise-constant traced values (engine/segments.py): a value per path and a seed per
  segment, segments starting at 0 and before the last step, each value one its field allows,
  and an off-at-zero field on (or off) in every segment as the config has it: its
  computation is in the program or not."""
  segments = config.get('segments')
  if segments is None:
    return  # (a config made before segments existed: none)
  check_section(segments, 'segments')
  starts, count = tuple(segments.starts), len(segments.starts)
  if len(segments.seeds) != count or len(segments.levels) != len(segments.paths) or any(
      len(values) != count for values in segments.levels):
    raise ConfigError(f'segments: starts has {count} entries, so seeds needs {count} and '
                      f'levels one tuple of {count} per path ({len(segments.paths)})')
  if count and len(set(segments.paths)) < len(segments.paths):
    raise ConfigError(f'segments.paths={segments.paths!r} names a field twice')
  total = batches.total_train_steps(config.train, _num_train(config.data, dataset))
  if count and (starts[0] != 0 or list(starts) != sorted(set(starts)) or starts[-1] >= total):
    raise ConfigError(f'segments.starts={starts!r} must increase from 0 and stay below the '
                      f"run's {total} steps")
  limits = {fields.TRAINING_IMAGES: _num_train(config.data, dataset),
            augment.SIDE: min(dataset.image_shape[:2]),
            augment.LONGEST: max(dataset.image_shape[:2])}
  for path, values in zip(segments.paths, segments.levels):
    field = fields.BY_PATH[path]
    own = _value_at(config, path)
    for i, value in enumerate(values):
      check_field(field, value, limits)
      if field.off_at_zero and (value > 0) != (own > 0):
        raise ConfigError(f'segments.levels for {path} (segment {i}: {value!r}) must stay '
                          f'{"above 0" if own > 0 else "0"}, as {path}={own!r} does: 0 leaves '
                          'its computation out of the program')


def _value_at(config, path: str):
  section, _, name = path.partition('.')
  return config[section][name]


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
