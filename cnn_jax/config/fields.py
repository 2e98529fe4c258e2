"""Every config field, once: its default, what it may hold, what it means, and its role.

Roles say what a field's value does to a run's program:
  program    identifies the program (shapes, structure, the loop's boundaries): runs that
             differ in it never train as one vmapped group
  traced     a number that changes no shape: the members of a vmapped group may differ in it
             (each member's value is a traced input, engine/program.py); with `off_at_zero`,
             0 leaves its computation out, so zero against non-zero is a program difference
  execution  how a run is computed, not which run it is (the layer implementations agree to
             float tolerance): it may change between resumptions of one run directory

The table is read by experiments/default.py and config/architectures.py (the defaults), by
config/validation.py (the allowed choices), by engine/program.py (which fields are traced,
which execution only), by engine/run_record.py and trained.py (a config.json written before a
field existed reads as its default) and by docs/CONFIG.md (`python -m cnn_jax.config.fields`
writes it; a test checks it is current). A new field is one entry here plus its
implementation.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import ml_collections

PROGRAM, TRACED, EXECUTION = 'program', 'traced', 'execution'
SWEEP_STRATEGIES = ('auto', 'sequential', 'vmap')
PICTURES = ('epochs', 'end', 'none')


@dataclasses.dataclass(frozen=True)
class Field:
  path: str
  default: Any
  role: str
  allowed: str    # what validation accepts, in words (config/validation.py checks it)
  meaning: str
  off_at_zero: bool = False
  choices: tuple = ()  # the allowed values of a choice field (validation reads them here)


def _f(path, default, role, allowed, meaning, **kw) -> Field:
  return Field(path, default, role, allowed, meaning, **kw)


_PER_CONV = 'a tuple, one entry per conv layer'
FIELDS = (
    _f('seed', 0, TRACED, 'an integer in [0, 2^32 - 1]',
       'parameters, dropout, augmentation and the shuffling order all derive from it'),
    # ---- data ----
    _f('data.name', 'mnist', PROGRAM, 'a dataset prepared for TFDS in data_dir',
       'any image-classification dataset; its shape, classes and sizes are read from its '
       'dataset_info.json'),
    _f('data.data_dir', '', EXECUTION, 'a directory, or empty',
       "where the prepared dataset lies ('' -> $TFDS_DATA_DIR -> ~/tensorflow_datasets)"),
    _f('data.download', False, EXECUTION, 'True or False',
       'prepare the dataset with TFDS when it is missing (needs the network)'),
    _f('data.validation', 'none', PROGRAM, 'none, train_head, train_random, test_stratified',
       'where a validation split comes from (data/datasets.py VALIDATION_MODES)'),
    _f('data.num_validation', 0, PROGRAM, 'an integer >= 0 (0 with validation none)',
       'images in the validation split'),
    _f('data.split_seed', 0, PROGRAM, 'an integer in [0, 2^32 - 1]',
       'the validation split\'s draw: fixed, so that seeds vary training and not the split'),
    # ---- model (the neutral defaults of architectures.base_model: a softmax regression) ----
    _f('model.name', 'custom', PROGRAM, 'a string', 'the architecture\'s name in logs and reports'),
    _f('model.conv_features', (), PROGRAM, 'a tuple of integers >= 1',
       'filters of each conv layer (its length is the number of conv layers)'),
    _f('model.conv_kernel_size', (), PROGRAM, _PER_CONV + ', integers >= 1', 'square kernels'),
    _f('model.conv_strides', (), PROGRAM, _PER_CONV + ', integers >= 1', 'conv strides'),
    _f('model.conv_padding', (), PROGRAM, _PER_CONV + ": 'SAME', 'VALID' or an integer >= 0",
       'conv padding'),
    _f('model.pool_type', (), PROGRAM, _PER_CONV + ': max, avg or none',
       'pooling after each conv layer'),
    _f('model.pool_window', (), PROGRAM, _PER_CONV + ', integers >= 1', 'pooling windows'),
    _f('model.pool_strides', (), PROGRAM, _PER_CONV + ', integers >= 1', 'pooling strides'),
    _f('model.pool_padding', (), PROGRAM, _PER_CONV + ": 'SAME', 'VALID' or an integer >= 0",
       'pooling padding'),
    _f('model.global_pool', 'none', PROGRAM, 'none, max, avg',
       "'none' flattens the last feature map; max or avg pools it to one value per channel",
       choices=('none', 'max', 'avg')),
    _f('model.conv_dropout', 0.0, TRACED, 'a rate in [0, 1)',
       'dropout on the last feature map, before flatten', off_at_zero=True),
    _f('model.hidden_dims', (), PROGRAM, 'a tuple of integers >= 1',
       'hidden dense layers, each followed by the activation'),
    _f('model.dense_dropout', 0.0, TRACED, 'a rate in [0, 1)',
       'dropout after each hidden dense layer', off_at_zero=True),
    _f('model.activation', 'relu', PROGRAM, 'relu, sigmoid, tanh, leaky_relu, elu, gelu, linear',
       'the activation of every conv and hidden dense layer',
       choices=('relu', 'sigmoid', 'tanh', 'leaky_relu', 'elu', 'gelu', 'linear')),
    _f('model.num_classes', 10, PROGRAM, "an integer >= 1, the dataset's class count",
       'outputs of the last layer'),
    _f('model.kernel_init', 'glorot_uniform', PROGRAM,
       'glorot_uniform, glorot_normal, he_normal, he_uniform, lecun_normal, normal, '
       'truncated_normal, zeros, constant', 'weight initializer',
       choices=('glorot_uniform', 'glorot_normal', 'he_normal', 'he_uniform', 'lecun_normal',
                'normal', 'truncated_normal', 'zeros', 'constant')),
    _f('model.kernel_init_std', 0.1, TRACED, 'a number > 0',
       'std of a normal weight initializer'),
    _f('model.kernel_init_value', 0.0, TRACED, 'a number', 'value of a constant weight initializer'),
    _f('model.bias_init', 'zeros', PROGRAM, 'zeros, constant, normal, truncated_normal',
       'bias initializer', choices=('zeros', 'constant', 'normal', 'truncated_normal')),
    _f('model.bias_init_std', 0.1, TRACED, 'a number > 0',
       'std of a normal bias initializer'),
    _f('model.bias_init_value', 0.0, TRACED, 'a number', 'value of a constant bias initializer'),
    _f('model.batch_norm', 'none', PROGRAM, 'none, before, after',
       'batch normalization of every conv and hidden dense layer, before or after the '
       'activation: batch statistics in training, running averages in evaluation',
       choices=('none', 'before', 'after')),
    _f('model.batch_norm_momentum', 0.9, TRACED, 'a number in [0, 1)',
       "the running averages keep this fraction at each step (flax's convention: PyTorch's "
       'momentum 0.1 is 0.9 here)'),
    _f('model.batch_norm_epsilon', 1e-5, TRACED, 'a number > 0',
       'added to the variance before its square root'),
    _f('model.compute_dtype', 'float32', PROGRAM, 'float32, bfloat16',
       'dtype of activations and matmuls; parameters, optimizer state and loss stay float32',
       choices=('float32', 'bfloat16')),
    _f('model.conv_impl', 'auto', EXECUTION, 'auto, xla, im2col, shifted',
       "how convolutions are computed (model/layers.py); 'auto' times the candidates per "
       'layer shape on this machine (model/layer_choice.py)'),
    _f('model.pool_impl', 'auto', EXECUTION, 'auto, xla, reshape (window == stride)',
       'how poolings are computed, chosen like conv_impl'),
    # ---- optimizer ----
    _f('optimizer.name', 'sgd', PROGRAM, 'sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw',
       'the optax optimizer',
       choices=('sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam', 'adamw')),
    _f('optimizer.learning_rate', 0.2, TRACED, 'a number > 0', 'the peak learning rate'),
    _f('optimizer.schedule', 'constant', PROGRAM, 'constant, cosine',
       "'cosine' decays to 0 at the last step", choices=('constant', 'cosine')),
    _f('optimizer.warmup_steps', 0, PROGRAM, 'an integer >= 0',
       'linear warm-up from 0 over these steps'),
    _f('optimizer.momentum', 0.9, TRACED, 'a number in [0, 1)', 'momentum / nesterov'),
    _f('optimizer.b1', 0.9, TRACED, 'a number in [0, 1)', 'adam / adamw first moment decay'),
    _f('optimizer.b2', 0.999, TRACED, 'a number in [0, 1)', 'adam / adamw second moment decay'),
    _f('optimizer.eps', 1e-8, TRACED, 'a number > 0', 'adam / adamw / rmsprop / adagrad epsilon'),
    _f('optimizer.rms_decay', 0.9, TRACED, 'a number in [0, 1)', 'rmsprop decay'),
    _f('optimizer.initial_accumulator', 0.1, TRACED, 'a number >= 0', 'adagrad start value'),
    _f('optimizer.weight_decay', 0.0, TRACED, 'a number >= 0',
       'decoupled for adamw, an L2 gradient term otherwise', off_at_zero=True),
    # ---- train ----
    _f('train.batch_size', 64, PROGRAM, 'an integer in [1, training images]', 'examples per step'),
    _f('train.num_epochs', 10.0, PROGRAM, 'a number > 0',
       'passes over the training split (may be fractional), unless num_train_steps is set'),
    _f('train.num_train_steps', -1, PROGRAM, 'an integer >= 1, or -1',
       'train steps; -1: num_epochs decides'),
    _f('train.log_every_steps', 200, PROGRAM, 'an integer >= 1',
       'train/* scalars are averages over this many steps'),
    _f('train.eval_every_steps', 0, PROGRAM, 'an integer >= 0',
       'evaluate every N steps as well as at epoch ends (0: epoch ends only); a search\'s '
       'pruner sees every evaluation'),
    _f('train.eval_batch_size', 1000, PROGRAM, 'an integer >= 1', 'examples per eval batch'),
    _f('train.label_smoothing', 0.0, TRACED, 'a number in [0, 1)',
       "the training loss's targets: (1 - s) one-hot + s / classes; the reported loss stays "
       'the unsmoothed one', off_at_zero=True),
    _f('train.checkpoint_every_epochs', 1, PROGRAM, 'an integer >= 0',
       '0 disables checkpoints (and so resuming)'),
    _f('train.pictures', 'epochs', EXECUTION, 'epochs, end, none',
       "PNGs in <workdir>/pictures and TensorBoard images: 'epochs' (curves and confusion "
       "matrices at each epoch end, every picture at the end), 'end' or 'none'",
       choices=PICTURES),
    _f('train.steps_per_call', 0, EXECUTION,
       'an integer in [0, log_every_steps] (and <= eval_every_steps when set)',
       'train steps per jitted call; 0 = the backend\'s measured best (1 on CPU); K > 1 scans'),
    _f('train.deterministic', False, EXECUTION, 'True or False',
       "on GPUs, XLA's deterministic ops (--xla_gpu_deterministic_ops, set when the run's "
       "process starts): the same command gives the same bits; max pooling then runs as "
       "'reshape', whose gradient XLA compiles under them (its own select-and-scatter it "
       'refuses), so max pools need window == stride. CPUs are deterministic without it'),
    _f('train.num_devices', 0, EXECUTION, 'an integer >= 0, at most the devices',
       'devices to use (0: all; over several processes, every process\'s): a run splits its '
       'batch over them, a vmapped group its members'),
    # ---- augment (cnn_jax/data/augment.py; every example of every member its own draw) ----
    _f('augment.translate', 0.0, TRACED, 'pixels in [0, min(height, width))',
       'shift along each axis uniform in [-translate, translate]', off_at_zero=True),
    _f('augment.rotate', 0.0, TRACED, 'degrees in [0, 180]',
       'rotation uniform in [-rotate, rotate]', off_at_zero=True),
    _f('augment.scale', 0.0, TRACED, 'a fraction in [0, 1)',
       'zoom uniform in [1 - scale, 1 + scale]', off_at_zero=True),
    _f('augment.elastic_alpha', 0.0, TRACED, 'pixels >= 0',
       'elastic distortion (Simard et al. 2003 used 34 on MNIST): the displacements\' scale',
       off_at_zero=True),
    _f('augment.elastic_sigma', 4.0, TRACED, 'pixels in (0, max(height, width)]',
       'std of the Gaussian smoothing the displacements (Simard: 4)'),
    _f('augment.erase_prob', 0.0, TRACED, 'a probability in [0, 1]',
       'random erasing (Zhong et al. 2017): the chance an example gets a rectangle of zeros',
       off_at_zero=True),
    _f('augment.erase_max_area', 0.0, TRACED, 'a fraction in [0, 1]',
       'the most of the image the rectangle covers (at least 2% of it)', off_at_zero=True),
    # ---- sweep ----
    _f('sweep.strategy', 'auto', EXECUTION, 'auto, sequential, vmap',
       "how a sweep's worker executes its trials: 'vmap' trains trials that differ only in "
       "traced fields as one program; 'auto' the measured best on this backend",
       choices=SWEEP_STRATEGIES),
    _f('sweep.max_group_size', 16, EXECUTION, 'an integer >= 1', 'members of a vmapped group'),
    _f('sweep.heartbeat_seconds', 10, EXECUTION, 'an integer >= 1',
       'a worker records a heartbeat for its trials this often; a trial silent for three is '
       'taken over by another worker'),
)
BY_PATH = {field.path: field for field in FIELDS}
SECTIONS = ('data', 'model', 'optimizer', 'train', 'augment', 'sweep')


def paths(role: str) -> tuple[str, ...]:
  return tuple(field.path for field in FIELDS if field.role == role)


def section_defaults(section: str) -> ml_collections.ConfigDict:
  """A section's fields at their defaults, as a ConfigDict."""
  prefix = section + '.'
  return ml_collections.ConfigDict({f.path[len(prefix):]: f.default for f in FIELDS
                                    if f.path.startswith(prefix)})


def defaults() -> ml_collections.ConfigDict:
  """Every field at its default (the model a softmax regression)."""
  config = ml_collections.ConfigDict({'seed': BY_PATH['seed'].default})
  for section in SECTIONS:
    config[section] = section_defaults(section)
  return config


def with_defaults(saved: dict) -> dict:
  """A config as JSON holds it (a run's config.json), with every field it lacks (written
  before the field existed) at its default: what the run ran with."""
  filled = json.loads(json.dumps(saved))
  for field in FIELDS:
    *parents, leaf = field.path.split('.')
    node = filled
    for part in parents:
      node = node.setdefault(part, {})
    if leaf not in node:
      node[leaf] = list(field.default) if isinstance(field.default, tuple) else field.default
  return filled


def markdown() -> str:
  """docs/CONFIG.md: the table, section by section."""
  lines = ['# Config fields', '',
           'Every field of a config, from `cnn_jax/config/fields.py` (this file is written by',
           '`python -m cnn_jax.config.fields > docs/CONFIG.md`; a test checks it is current).',
           'Model defaults are the neutral ones of `architectures.base_model()`; experiment',
           'files start from `experiments/default.py` (T2\'s model) and change a few.', '',
           'Role: **program** fields identify the compiled program (runs differing in one never',
           'share a vmapped group); **traced** ones may differ between the members of a group',
           '(0 against non-zero is structural where marked "off at 0"); **execution** ones change',
           'how a run is computed, not which run it is (they may change when a run resumes).',
           '"A number" is a finite one: inf and NaN are refused like any other value outside',
           'a field\'s allowed ones.', '']
  for section in ('seed', *SECTIONS):
    rows = [f for f in FIELDS if f.path == section or f.path.startswith(section + '.')]
    lines += [f'## {section}', '', '| field | default | allowed | role | meaning |',
              '| --- | --- | --- | --- | --- |']
    for f in rows:
      role = f.role + (' (off at 0)' if f.off_at_zero else '')
      lines.append(f'| `{f.path}` | `{f.default!r}` | {f.allowed} | {role} | {f.meaning} |')
    lines.append('')
  return '\n'.join(lines)


if __name__ == '__main__':
  sys.stdout.write(markdown())
