"""`validate(config)`: every field of every section, checked once, before any data is read.

The rest of the code trusts a validated config: the model, optimizer, data and loop modules
build what it says without checking again. Each failure is a ConfigError whose message names
the field, the value and what is allowed, so the command line can print it as one line.
The allowed values of choice fields come from the field table (config/fields.py), which a test
keeps equal to what the implementing modules offer (model.cnn.ACTIVATIONS, ...). What a
config needs of its dataset (image shape, class count, split sizes) comes from the prepared dataset's own JSON files (data/datasets.info), read
before any image; a dataset that is not prepared is a DatasetNotFoundError of one line.

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
from cnn_jax.model import cnn
from cnn_jax.model import shapes

MAX_SEED = 2**32 - 1  # seeds become uint32 PRNG keys and numpy seed sequences
EPOCHS_DECIDE = -1  # train.num_train_steps's default: the run's length is train.num_epochs

# Optimizer slots per parameter (momentum, second moments ...), for the memory estimate.
_OPTIMIZER_SLOTS = {'sgd': 0, 'momentum': 1, 'nesterov': 1, 'adagrad': 1, 'rmsprop': 1,
                    'adam': 2, 'adamw': 2}


def validate(config, members: int = 1) -> None:
  """Raises ConfigError for the first field that cannot work (DatasetNotFoundError when the
  dataset is not prepared). `members`: how many runs of this shape train together (a vmapped
  sweep group), for the memory check."""
  _integer('seed', config.seed, low=0, high=MAX_SEED)
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


def validate_determinism(train_cfg, model_cfg) -> None:
  """train.deterministic runs max pooling as 'reshape' (XLA's deterministic ops refuse its
  own max-pool gradient, select-and-scatter), which computes only window == stride."""
  _of_type('train.deterministic', train_cfg.deterministic, bool)
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
  _of_type('data.name', data_cfg.name, str)
  if not datasets.NAME_PATTERN.fullmatch(data_cfg.name):
    raise ConfigError(f'data.name={data_cfg.name!r} is not a TFDS dataset name: letters, '
                      "digits and '_', optionally '/<builder config>' (mnist, cifar10, ...)")
  _of_type('data.data_dir', data_cfg.data_dir, str)
  _of_type('data.download', data_cfg.download, bool)
  if data_cfg.validation not in datasets.VALIDATION_MODES:
    allowed = '; '.join(f'{k} ({v})' for k, v in datasets.VALIDATION_MODES.items())
    raise ConfigError(f'data.validation={data_cfg.validation!r} is not supported; '
                      f'allowed values: {allowed}')
  _integer('data.num_validation', data_cfg.num_validation, low=0)
  _integer('data.split_seed', data_cfg.split_seed, low=0, high=MAX_SEED)
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
  _of_type('model.name', model_cfg.name, str)
  _chosen('model.activation', model_cfg.activation)
  _chosen('model.global_pool', model_cfg.global_pool)
  _chosen('model.kernel_init', model_cfg.kernel_init)
  _chosen('model.bias_init', model_cfg.bias_init)
  num_layers = len(model_cfg.conv_features)
  for field in cnn.PER_CONV_LAYER_FIELDS:
    values = getattr(model_cfg, field)
    if not isinstance(values, (tuple, list)) or len(values) != num_layers:
      raise ConfigError(
          f'model.{field}={values!r} must be a tuple with one entry per conv layer: '
          f'model.conv_features={tuple(model_cfg.conv_features)!r} has {num_layers}')
  for field in ('conv_features', 'conv_kernel_size', 'conv_strides', 'pool_window',
                'pool_strides', 'hidden_dims'):
    for i, value in enumerate(getattr(model_cfg, field)):
      _integer(f'model.{field}[{i}]', value, low=1)
  _integer('model.num_classes', model_cfg.num_classes, low=1)
  if num_classes is not None and model_cfg.num_classes != num_classes:
    raise ConfigError(f'model.num_classes={model_cfg.num_classes} but the dataset has '
                      f'{num_classes} classes')
  for i, pool in enumerate(model_cfg.pool_type):
    _choice(f'model.pool_type[{i}]', pool, cnn.POOL_TYPES)
  for field in ('conv_padding', 'pool_padding'):
    for i, value in enumerate(getattr(model_cfg, field)):
      shapes.parse_padding(value, f'model.{field}[{i}]')
  for field in ('conv_dropout', 'dense_dropout'):
    rate = _number(f'model.{field}', getattr(model_cfg, field))
    if not 0.0 <= rate < 1.0:
      raise ConfigError(f'model.{field}={rate!r}: a dropout rate must lie in [0, 1)')
  for field in ('kernel_init_value', 'bias_init_value'):
    _number(f'model.{field}', getattr(model_cfg, field))
  # A std <= 0 is no std, whichever initializer is chosen (one that does not draw would
  # otherwise keep it silently, and a sweep over the initializer would then fail late).
  for field in ('kernel_init_std', 'bias_init_std'):
    if not _number(f'model.{field}', getattr(model_cfg, field)) > 0:
      raise ConfigError(f'model.{field}={getattr(model_cfg, field)!r} must be > 0 (the std '
                        'of a normal initializer)')
  _chosen('model.batch_norm', model_cfg.batch_norm)
  momentum = _number('model.batch_norm_momentum', model_cfg.batch_norm_momentum)
  if not 0.0 <= momentum < 1.0:
    raise ConfigError(f'model.batch_norm_momentum={momentum!r} must lie in [0, 1) (the '
                      'running averages keep this fraction of their value at each step)')
  if not _number('model.batch_norm_epsilon', model_cfg.batch_norm_epsilon) > 0:
    raise ConfigError(f'model.batch_norm_epsilon={model_cfg.batch_norm_epsilon!r} must be > 0')
  _chosen('model.compute_dtype', model_cfg.compute_dtype)
  _choice('model.conv_impl', model_cfg.conv_impl, choice.CONV_CHOICES)
  _choice('model.pool_impl', model_cfg.pool_impl, choice.POOL_CHOICES)
  for i, pool in enumerate(model_cfg.pool_type):
    exact = implementations.pool_impls_for(model_cfg.pool_window[i], model_cfg.pool_strides[i])
    if pool != 'none' and model_cfg.pool_impl not in (choice.AUTO, *exact):
      raise ConfigError(
          f'model.pool_impl={model_cfg.pool_impl!r} cannot compute pool{i} (window '
          f'{model_cfg.pool_window[i]}, stride {model_cfg.pool_strides[i]}); allowed values '
          f'for this model: {", ".join((choice.AUTO, *exact))}')
  shapes.infer_layer_shapes(model_cfg, input_shape)  # a layer shrunk to nothing names itself


def validate_optimizer(opt_cfg) -> None:
  _chosen('optimizer.name', opt_cfg.name)
  _chosen('optimizer.schedule', opt_cfg.schedule)
  if not _number('optimizer.learning_rate', opt_cfg.learning_rate) > 0:
    raise ConfigError(f'optimizer.learning_rate={opt_cfg.learning_rate!r} must be > 0')
  _integer('optimizer.warmup_steps', opt_cfg.warmup_steps, low=0)
  for field in ('momentum', 'b1', 'b2', 'rms_decay'):
    value = _number(f'optimizer.{field}', getattr(opt_cfg, field))
    if not 0.0 <= value < 1.0:
      raise ConfigError(f'optimizer.{field}={value!r} must lie in [0, 1)')
  if not _number('optimizer.eps', opt_cfg.eps) > 0:
    raise ConfigError(f'optimizer.eps={opt_cfg.eps!r} must be > 0')
  for field in ('initial_accumulator', 'weight_decay'):
    if not _number(f'optimizer.{field}', getattr(opt_cfg, field)) >= 0:
      raise ConfigError(f'optimizer.{field}={getattr(opt_cfg, field)!r} must be >= 0')


def validate_train(train_cfg, data_cfg, dataset: datasets.DatasetInfo) -> None:
  num_train = dataset.split_sizes['train']
  if data_cfg.validation in ('train_head', 'train_random'):
    num_train -= data_cfg.num_validation
  _integer('train.batch_size', train_cfg.batch_size, low=1, high=num_train,
           why=f'(the {num_train} training images)')
  steps = _integer('train.num_train_steps', train_cfg.num_train_steps)
  if steps != EPOCHS_DECIDE and steps < 1:  # (0 or -5 trained the epochs without a word)
    raise ConfigError(f'train.num_train_steps={steps!r} must be a positive integer, or '
                      f'{EPOCHS_DECIDE} (the default: train.num_epochs decides)')
  # Checked even when num_train_steps overrides it: a bad value is never kept silently.
  if not _number('train.num_epochs', train_cfg.num_epochs) > 0:
    raise ConfigError(f'train.num_epochs={train_cfg.num_epochs!r} must be > 0')
  smoothing = _number('train.label_smoothing', train_cfg.label_smoothing)
  if not 0.0 <= smoothing < 1.0:
    raise ConfigError(f'train.label_smoothing={smoothing!r} must lie in [0, 1) (0: one-hot '
                      'targets)')
  for field in ('log_every_steps', 'eval_batch_size'):
    _integer(f'train.{field}', getattr(train_cfg, field), low=1)
  _integer('train.eval_every_steps', train_cfg.eval_every_steps, low=0,
           why='(0: evaluate at epoch ends only)')
  _integer('train.checkpoint_every_epochs', train_cfg.checkpoint_every_epochs, low=0,
           why='(0 turns checkpoints off)')
  _integer('train.steps_per_call', train_cfg.steps_per_call, low=0,
           why='(0 chooses per backend)')
  # A call ends at every log step and evaluation (engine/loop.py), so more steps than that
  # would never run in one call.
  longest_call = min(n for n in (train_cfg.log_every_steps, train_cfg.eval_every_steps) if n)
  if train_cfg.steps_per_call > longest_call:
    raise ConfigError(f'train.steps_per_call={train_cfg.steps_per_call} must be between 0 '
                      f'and {longest_call}: a call ends at every log step '
                      f'(train.log_every_steps={train_cfg.log_every_steps}) and evaluation '
                      f'(train.eval_every_steps={train_cfg.eval_every_steps})')
  _integer('train.num_devices', train_cfg.num_devices, low=0, why='(0: every device)')
  _chosen('train.pictures', train_cfg.pictures)
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
  side, longest = min(image_shape[:2]), max(image_shape[:2])
  # field: (low, high, high included, what the number is)
  ranges = {
      'translate': (0, side, False, f'pixels; a shift by the whole {side}-pixel side leaves '
                                    'nothing'),
      'rotate': (0, 180, True, 'degrees'),
      'scale': (0, 1, False, 'the zoom lies in [1 - scale, 1 + scale]'),
      'elastic_alpha': (0, math.inf, False, 'pixels; 0 turns elastic distortion off'),
      'erase_prob': (0, 1, True, 'a probability'),
      'erase_max_area': (0, 1, True, 'a fraction of the image'),
  }
  for field, (low, high, closed, why) in ranges.items():
    value = _number(f'augment.{field}', augment_cfg[field])
    if not (low <= value <= high and math.isfinite(value)) or (value == high and not closed):
      raise ConfigError(f'augment.{field}={value!r} must lie in '
                        f'[{low}, {high}{"]" if closed else ")"} ({why})')
  # Checked with elastic distortion off too: a sweep that turns it on must not meet it late.
  sigma = _number('augment.elastic_sigma', augment_cfg['elastic_sigma'])
  if not 0 < sigma <= longest:
    raise ConfigError(f'augment.elastic_sigma={sigma!r} must lie in (0, {longest}] (pixels: '
                      f'the std of the smoothing; wider than the image it is a plain shift)')


def validate_sweep(sweep_cfg) -> None:
  _chosen('sweep.strategy', sweep_cfg.strategy)
  _integer('sweep.max_group_size', sweep_cfg.max_group_size, low=1)
  _integer('sweep.heartbeat_seconds', sweep_cfg.heartbeat_seconds, low=1)


def memory_needed(config, members: int = 1, dataset: datasets.DatasetInfo | None = None
                  ) -> tuple[int, int]:
  """(parameters per member, bytes a training run needs), estimated from the shapes: the
  float32 parameters, their gradients and optimizer slots, the activations of one batch
  (forward and backward), and the uint8 dataset on the device. `dataset`: the config's
  (datasets.info), when the caller has it."""
  dataset = dataset or datasets.info(config.data)
  params = shapes.count_params(config.model, dataset.image_shape)
  copies = 2 + _OPTIMIZER_SLOTS[config.optimizer.name]
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


def _chosen(path, value) -> None:
  """A choice field's value against the allowed values of config/fields.py."""
  _choice(path, value, fields.BY_PATH[path].choices)


def _choice(field, value, allowed) -> None:
  if value not in allowed:
    raise ConfigError(f'{field}={value!r} is not supported; allowed values: '
                      f'{", ".join(allowed)}')


def _of_type(field, value, kind) -> None:
  if not isinstance(value, kind):
    raise ConfigError(f'{field}={value!r} must be of type {kind.__name__}')


def _integer(field, value, low=None, high=None, why='') -> int:
  if isinstance(value, bool) or not isinstance(value, int):
    raise ConfigError(f'{field}={value!r} must be an integer')
  if (low is not None and value < low) or (high is not None and value > high):
    bounds = (f'between {low} and {high}' if high is not None and low is not None
              else 'a positive integer' if low == 1 else f'>= {low}' if low is not None
              else f'<= {high}')
    raise ConfigError(f'{field}={value!r} must be {bounds}' + (f' {why}' if why else ''))
  return value


def _number(field, value) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
    raise ConfigError(f'{field}={value!r} must be a number')
  if math.isinf(value):  # no field means anything by it (a learning rate of inf is NaN later)
    raise ConfigError(f'{field}={value!r} must be a finite number')
  return value
