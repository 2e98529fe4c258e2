"""Every config field, once: its default, what it may hold, what it means, and its role.

Roles say what a field's value does to a run's program:
  program    identifies the program (shapes, structure, the loop's boundaries): runs that
             differ in it never train as one vmapped group
  traced     a number that changes no shape: the members of a vmapped group may differ in it
             (each member's value is a traced input, engine/program.py); with `off_at_zero`,
             0 leaves its computation out, so zero against non-zero is a program difference
  execution  how a run is computed, not which run it is (the layer implementations agree to
             float tolerance): it may change between resumptions of one run directory

What a field may hold is data: choices read from the module that implements them (a new
activation is one entry in model/cnn.py), numbers a ranges.Range, the augmentation strengths
declared whole in data/augment.py. Read for defaults, by the one generic check of validation,
by engine/grouping.py (traced and execution fields), by config/files.py for a config.json older
than a field, and by docs/CONFIG.md (`python -m cnn_jax.config.fields`, written by
config/field_docs.py). A new field is one entry here.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable

import ml_collections

from cnn_jax.data import augment
from cnn_jax.data import datasets
from cnn_jax.layer_impls import choice
from cnn_jax.model import cnn
from cnn_jax.model import layer_list
from cnn_jax.model import shapes
from cnn_jax.optim import optimizers
from cnn_jax.errors import ConfigError
from cnn_jax.ranges import Range

PROGRAM, TRACED, EXECUTION = 'program', 'traced', 'execution'
SWEEP_STRATEGIES = ('auto', 'sequential', 'vmap')  # implemented above config/ (sweeps/),
PICTURES = ('epochs', 'end', 'none')  # (reports/): so declared here
MAX_SEED = 2**32 - 1  # seeds become uint32 PRNG keys and numpy seed sequences
EPOCHS_DECIDE = -1  # train.num_train_steps's default: the run's length is train.num_epochs
TRAINING_IMAGES = 'training images'  # a bound known with the dataset (less a validation split)


@dataclasses.dataclass(frozen=True)
class Field:
  """A config field. What it may hold: `choices` (a dict's values say what each does), or
  `range`, or `check` (a function(value, path) raising ConfigError), or its default's type;
  `holds` says so in words where no choices or range do. A tuple's entries are checked."""
  path: str
  default: Any
  role: str
  meaning: str
  off_at_zero: bool = False
  choices: tuple | dict = ()
  range: Range | None = None
  check: Callable | None = None
  holds: str = ''

  @property
  def name(self) -> str:
    return self.path.rpartition('.')[2]

  @property
  def per_conv_layer(self) -> bool:
    return self.path.startswith('model.') and self.name in cnn.PER_CONV_LAYER_FIELDS

  @property
  def allowed(self) -> str:
    """What the field may hold, in words (docs/CONFIG.md), written from its declaration."""
    what = (', '.join(map(str, self.choices)) if self.choices
            else self.range.text() if self.range
            else self.holds or ('True or False' if isinstance(self.default, bool) else 'a string'))
    if not isinstance(self.default, tuple):
      return what
    return (f'a tuple, one entry per conv layer: {what}' if self.per_conv_layer
            else f'a tuple of {what}')


_f = Field


def _ints(low=None, high=None, **kw) -> Range:
  return Range(low, high, integer=True, **kw)


_ANY, _POSITIVE = Range(), Range(0, low_open=True)
_STD = Range(0, low_open=True, why='the std of a normal initializer')
_FRACTION = Range(0, 1, high_open=True)  # [0, 1): rates, decays, momenta
_ENTRIES, _COUNT = _ints(1, noun='integers'), _ints(0)  # entries of a tuple of sizes; counts
_DROPOUT = Range(0, 1, high_open=True, noun='a rate', why='a dropout rate')
_PADDING = dict(check=shapes.parse_padding, holds=shapes.PADDING_ALLOWED)
FIELDS = (
    _f('seed', 0, TRACED,
       'parameters, dropout, augmentation and the shuffling order all derive from it',
       range=_ints(0, MAX_SEED)),
    # ---- data ----
    _f('data.name', 'mnist', PROGRAM,
       'any image-classification dataset; its shape, classes and sizes are read from its '
       'dataset_info.json', holds='a dataset prepared for TFDS in data_dir'),
    _f('data.data_dir', '', EXECUTION,
       "where the prepared dataset lies ('' -> $TFDS_DATA_DIR -> ~/tensorflow_datasets)",
       holds='a directory, or empty'),
    _f('data.download', False, EXECUTION,
       'prepare the dataset with TFDS when it is missing (needs the network)'),
    _f('data.validation', 'none', PROGRAM,
       'where a validation split comes from (data/datasets.py VALIDATION_MODES)',
       choices=datasets.VALIDATION_MODES),
    _f('data.num_validation', 0, PROGRAM,
       'images in the validation split: 0 with validation none, else fewer than its source '
       'split has', range=_COUNT),
    _f('data.split_seed', 0, PROGRAM,
       'the validation split\'s draw: fixed, so that seeds vary training and not the split',
       range=_ints(0, MAX_SEED)),
    # ---- model (the neutral defaults of architectures.base_model: a softmax regression) ----
    _f('model.name', 'custom', PROGRAM, 'the architecture\'s name in logs and reports'),
    _f('model.conv_features', (), PROGRAM,
       'filters of each conv layer (its length is the number of conv layers)', range=_ENTRIES),
    _f('model.conv_kernel_size', (), PROGRAM, 'square kernels', range=_ENTRIES),
    _f('model.conv_strides', (), PROGRAM, 'conv strides', range=_ENTRIES),
    _f('model.conv_padding', (), PROGRAM, 'conv padding', **_PADDING),
    _f('model.pool_type', (), PROGRAM, 'pooling after each conv layer', choices=cnn.POOL_TYPES),
    _f('model.pool_window', (), PROGRAM, 'pooling windows', range=_ENTRIES),
    _f('model.pool_strides', (), PROGRAM, 'pooling strides', range=_ENTRIES),
    _f('model.pool_padding', (), PROGRAM, 'pooling padding', **_PADDING),
    _f('model.global_pool', 'none', PROGRAM,
       "'none' flattens the last feature map; max or avg pools it to one value per channel",
       choices=cnn.GLOBAL_POOL_TYPES),
    _f('model.conv_dropout', 0.0, TRACED, 'dropout on the last feature map, before flatten',
       off_at_zero=True, range=_DROPOUT),
    _f('model.hidden_dims', (), PROGRAM, 'hidden dense layers, each followed by the activation',
       range=_ENTRIES),
    _f('model.dense_dropout', 0.0, TRACED, 'dropout after each hidden dense layer',
       off_at_zero=True, range=_DROPOUT),
    _f('model.activation', 'relu', PROGRAM, 'the activation of every conv and hidden dense layer',
       choices=tuple(cnn.ACTIVATIONS)),
    _f('model.num_classes', 10, PROGRAM, "outputs of the last layer: the dataset's class count",
       range=_ints(1)),
    _f('model.kernel_init', 'glorot_uniform', PROGRAM, 'weight initializer',
       choices=cnn.KERNEL_INITIALIZERS),
    # A std <= 0 is no std, whichever initializer is chosen (one that does not draw would
    # otherwise keep it silently, and a sweep over the initializer would then fail late).
    _f('model.kernel_init_std', 0.1, TRACED, 'std of a normal weight initializer', range=_STD),
    _f('model.kernel_init_value', 0.0, TRACED, 'value of a constant weight initializer',
       range=_ANY),
    _f('model.bias_init', 'zeros', PROGRAM, 'bias initializer', choices=cnn.BIAS_INITIALIZERS),
    _f('model.bias_init_std', 0.1, TRACED, 'std of a normal bias initializer', range=_STD),
    _f('model.bias_init_value', 0.0, TRACED, 'value of a constant bias initializer', range=_ANY),
    _f('model.batch_norm', 'none', PROGRAM,
       'batch normalization of every conv and hidden dense layer, before or after the '
       'activation: batch statistics in training, running averages in evaluation',
       choices=layer_list.BATCH_NORM),
    _f('model.batch_norm_momentum', 0.9, TRACED,
       "the running averages keep this fraction at each step (flax's convention: PyTorch's "
       'momentum 0.1 is 0.9 here)',
       range=Range(0, 1, high_open=True, why='the running averages keep this fraction of '
                                              'their value at each step')),
    _f('model.batch_norm_epsilon', 1e-5, TRACED, 'added to the variance before its square root',
       range=_POSITIVE),
    _f('model.compute_dtype', 'float32', PROGRAM,
       'dtype of activations and matmuls; parameters, optimizer state and loss stay float32',
       choices=cnn.COMPUTE_DTYPES),
    _f('model.conv_impl', 'auto', EXECUTION,
       "how convolutions are computed (layer_impls/implementations.py); 'auto' times the "
       'candidates per layer shape (layer_impls/resolution.py)', choices=choice.CONV_CHOICES),
    _f('model.pool_impl', 'auto', EXECUTION,
       "how poolings are computed, chosen like conv_impl ('reshape' computes window == stride "
       'only)', choices=choice.POOL_CHOICES),
    # ---- optimizer ----
    _f('optimizer.name', 'sgd', PROGRAM, 'the optax optimizer', choices=optimizers.OPTIMIZERS),
    _f('optimizer.learning_rate', 0.2, TRACED, 'the peak learning rate', range=_POSITIVE),
    _f('optimizer.schedule', 'constant', PROGRAM, "'cosine' decays to 0 at the last step",
       choices=optimizers.SCHEDULES),
    _f('optimizer.warmup_steps', 0, PROGRAM, 'linear warm-up from 0 over these steps',
       range=_COUNT),
    _f('optimizer.momentum', 0.9, TRACED, 'momentum / nesterov', range=_FRACTION),
    _f('optimizer.b1', 0.9, TRACED, 'adam / adamw first moment decay', range=_FRACTION),
    _f('optimizer.b2', 0.999, TRACED, 'adam / adamw second moment decay', range=_FRACTION),
    _f('optimizer.eps', 1e-8, TRACED, 'adam / adamw / rmsprop / adagrad epsilon', range=_POSITIVE),
    _f('optimizer.rms_decay', 0.9, TRACED, 'rmsprop decay', range=_FRACTION),
    _f('optimizer.initial_accumulator', 0.1, TRACED, 'adagrad start value', range=Range(0)),
    _f('optimizer.weight_decay', 0.0, TRACED,
       'decoupled for adamw, an L2 gradient term otherwise', off_at_zero=True, range=Range(0)),
    # ---- train ----
    _f('train.batch_size', 64, PROGRAM, 'examples per step',
       range=_ints(1, TRAINING_IMAGES, why='the {high} training images')),
    # Checked even when num_train_steps overrides it: a bad value is never kept silently.
    _f('train.num_epochs', 10.0, PROGRAM,
       'passes over the training split (may be fractional), unless num_train_steps is set',
       range=_POSITIVE),
    _f('train.num_train_steps', EPOCHS_DECIDE, PROGRAM, 'train steps; -1: num_epochs decides',
       range=_ints(1, also=(EPOCHS_DECIDE,), why='the default: train.num_epochs decides')),
    _f('train.log_every_steps', 200, PROGRAM, 'train/* scalars are averages over this many steps',
       range=_ints(1)),
    _f('train.eval_every_steps', 0, PROGRAM,
       'evaluate every N steps as well as at epoch ends (0: epoch ends only); a search\'s '
       'pruner sees every evaluation', range=_ints(0, why='0: evaluate at epoch ends only')),
    _f('train.eval_batch_size', 1000, PROGRAM, 'examples per eval batch', range=_ints(1)),
    _f('train.label_smoothing', 0.0, TRACED,
       "the training loss's targets: (1 - s) one-hot + s / classes; the reported loss stays "
       'the unsmoothed one', off_at_zero=True,
       range=Range(0, 1, high_open=True, why='0: one-hot targets')),
    _f('train.checkpoint_every_epochs', 1, PROGRAM, '0 disables checkpoints (and so resuming)',
       range=_ints(0, why='0 turns checkpoints off')),
    _f('train.pictures', 'epochs', EXECUTION,
       "PNGs in <workdir>/pictures and TensorBoard images: 'epochs' (curves and confusion "
       "matrices at each epoch end, every picture at the end), 'end' or 'none'", choices=PICTURES),
    _f('train.steps_per_call', 0, EXECUTION,
       'train steps per jitted call, at most log_every_steps (and eval_every_steps when set); '
       '0 = the backend\'s measured best (1 on CPU); K > 1 scans',
       range=_ints(0, why='0 chooses per backend')),
    _f('train.deterministic', False, EXECUTION,
       "on GPUs, XLA's deterministic ops (--xla_gpu_deterministic_ops, set when the run's "
       "process starts): the same command gives the same bits; max pooling then runs as "
       "'reshape', whose gradient XLA compiles under them (its own select-and-scatter it "
       'refuses), so max pools need window == stride. CPUs are deterministic without it'),
    _f('train.num_devices', 0, EXECUTION,
       'devices to use, at most the devices there are (0: all; over several processes, every '
       'process\'s): a run splits its batch over them, a vmapped group its members',
       range=_ints(0, why='0: every device')),
    # ---- augment (declared in cnn_jax/data/augment.py; every example its own draw) ----
    *(_f(f'augment.{s.name}', s.default, TRACED, s.meaning, off_at_zero=s.off_at_zero,
         range=s.range) for s in augment.STRENGTHS),
    # ---- sweep ----
    _f('sweep.strategy', 'auto', EXECUTION,
       "how a sweep's worker executes its trials: 'vmap' trains trials that differ only in "
       "traced fields as one program; 'auto' the measured best on this backend",
       choices=SWEEP_STRATEGIES),
    _f('sweep.max_group_size', 16, EXECUTION, 'members of a vmapped group', range=_ints(1)),
    _f('sweep.heartbeat_seconds', 10, EXECUTION,
       'a worker records a heartbeat for its trials this often; a trial silent for three is '
       'taken over by another worker', range=_ints(1)),
)
# ---- segments (piecewise-constant traced values: a population's member replayed alone,
# engine/segments.py; their rules between fields in validation.validate_segments) ----
# What segments may set and a population (sweeps/pbt.py) explore: the seed only seeds a member.
TRACED_NUMBERS = tuple(f.path for f in FIELDS if f.role == TRACED and f.path != 'seed')


def _numbers(value, path: str) -> None:
  if not isinstance(value, (tuple, list)) or not all(
      isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
    raise ConfigError(f'{path}={value!r} must be a tuple of numbers, one per segment')


FIELDS += (
    _f('segments.starts', (), PROGRAM, 'the steps at which the segments start, increasing from '
       '0; () for none', range=_ints(0, noun='steps')),
    _f('segments.seeds', (), PROGRAM, "each segment's data order and dropout and augmentation "
       'key come from this seed (`seed` gives the initial parameters)',
       range=_ints(0, MAX_SEED)),
    _f('segments.paths', (), PROGRAM, 'the traced fields the segments set',
       choices=TRACED_NUMBERS),
    _f('segments.levels', (), PROGRAM, "per path, the field's value in each segment",
       holds='tuples of numbers, one per segment', check=_numbers),
    _f('segments.group_size', 1, EXECUTION, 'trains the run as one member of a vmapped group '
       "of this many copies of itself: a population's program, whose member the segments then "
       'match bit for bit, not to float tolerance (best_member.py sets it); 1: alone',
       range=_ints(1)),
)
BY_PATH = {field.path: field for field in FIELDS}
SECTIONS = ('data', 'model', 'optimizer', 'train', 'augment', 'sweep', 'segments')


def of_section(section: str) -> tuple[Field, ...]:
  """The fields of a section ('seed' is a section of one), in the table's order."""
  return tuple(f for f in FIELDS if f.path == section or f.path.startswith(section + '.'))


def paths(role: str) -> tuple[str, ...]:
  return tuple(field.path for field in FIELDS if field.role == role)


def section_defaults(section: str) -> ml_collections.ConfigDict:
  """A section's fields at their defaults, as a ConfigDict."""
  return ml_collections.ConfigDict({f.name: f.default for f in of_section(section)})


def defaults() -> ml_collections.ConfigDict:
  """Every field at its default (the model a softmax regression)."""
  config = ml_collections.ConfigDict({'seed': BY_PATH['seed'].default})
  for section in SECTIONS:
    config[section] = section_defaults(section)
  return config


if __name__ == '__main__':  # docs/CONFIG.md (config/field_docs.py writes it)
  from cnn_jax.config import field_docs  # pylint: disable=g-import-not-at-top
  sys.stdout.write(field_docs.markdown())
