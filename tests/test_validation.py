"""validate(config): a config that cannot work fails before any data is read, naming the
field and what is allowed."""
import pytest

from cnn_jax.config import architectures
from cnn_jax.config import validation
from cnn_jax.errors import ConfigError
from cnn_jax.model import cnn
from cnn_jax.optim import optimizers
from experiments import default


@pytest.fixture(autouse=True)
def described_mnist(mnist_described):
  """Configs are validated against MNIST's own dataset_info.json (its sizes), no image read."""


def pool_model(**changes):
  config = architectures.cntk_pool()
  config.update(changes)
  return config


@pytest.mark.parametrize('changes, message', [
    (dict(activation='swishy'), r"model.activation='swishy' is not supported; allowed values: relu, sigmoid"),
    (dict(pool_type=('max', 'median')), r"model.pool_type\[1\]='median' is not supported; allowed values: max, avg, none"),
    (dict(global_pool='sum'), r"model.global_pool='sum' .* allowed values: none, max, avg"),
    (dict(kernel_init='xavier'), r"model.kernel_init='xavier' .* allowed values: glorot_uniform"),
    (dict(bias_init='glorot_uniform'), r"model.bias_init='glorot_uniform' .* allowed values: zeros"),
    (dict(conv_features=(8, 0)), r'model.conv_features\[1\]=0 must be a positive integer'),
    (dict(conv_strides=(1, -2)), r'model.conv_strides\[1\]=-2 must be a positive integer'),
    (dict(pool_window=(2, 0)), r'model.pool_window\[1\]=0 must be a positive integer'),
    (dict(hidden_dims=(0,)), r'model.hidden_dims\[0\]=0 must be a positive integer'),
    (dict(conv_kernel_size=(5, 5, 5)), r'model.conv_kernel_size=.* one entry per conv layer: model.conv_features=\(8, 16\) has 2'),
    (dict(pool_type=('max',)), r'model.pool_type=.* one entry per conv layer'),
    (dict(conv_padding=('SAME', 'FULL')), r"model.conv_padding\[1\]='FULL': allowed values are \"SAME\", \"VALID\" or an integer"),
    (dict(conv_dropout=1.0), r'model.conv_dropout=1.0 must lie in \[0, 1\) \(a dropout rate\)'),
    (dict(kernel_init='normal', kernel_init_std=0.0), r'model.kernel_init_std=0.0 must be > 0'),
    (dict(num_classes=0), r'model.num_classes=0 must be a positive integer'),
    # Layers whose output would be empty name themselves and their input size.
    (dict(pool_window=(2, 15)), r'layer pool1 \(max pool window 15, stride 3, padding VALID\) gets a 14x14 input'),
    (dict(conv_strides=(30, 1)), r'layer pool0 .* gets a 1x1 input'),
    (dict(conv_padding=('VALID', 'VALID'), conv_kernel_size=(5, 13)), r'layer conv1 \(conv window 13.*12x12 input'),
])
def test_invalid_model_configs(changes, message):
  with pytest.raises(ConfigError, match=message):
    validation.validate_model(pool_model(**changes))


@pytest.mark.parametrize('changes, message', [
    (dict(name='lbfgs'), r"optimizer.name='lbfgs' is not supported; allowed values: sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw"),
    (dict(schedule='step'), r"optimizer.schedule='step' .* allowed values: constant, cosine"),
    (dict(learning_rate=0.0), r'optimizer.learning_rate=0.0 must be > 0'),
    (dict(learning_rate=float('nan')), r'optimizer.learning_rate=nan must be a number'),
    (dict(momentum=1.5), r'optimizer.momentum=1.5 must lie in \[0, 1\)'),
    (dict(b2=-0.1), r'optimizer.b2=-0.1 must lie in \[0, 1\)'),
    (dict(eps=0.0), r'optimizer.eps=0.0 must be > 0'),
    (dict(weight_decay=-1e-4), r'optimizer.weight_decay=-0.0001 must be >= 0'),
    (dict(warmup_steps=-3), r'optimizer.warmup_steps=-3 must be >= 0'),
])
def test_invalid_optimizer_configs(changes, message):
  config = default.get_config()
  config.optimizer.update(changes)
  with pytest.raises(ConfigError, match=message):
    validation.validate(config)


def test_every_allowed_value_builds():
  for activation in cnn.ACTIVATIONS:
    validation.validate_model(pool_model(activation=activation))
    cnn.build_model(pool_model(activation=activation))
  for pool in cnn.POOL_TYPES:
    cnn.build_model(pool_model(pool_type=(pool, pool)))
  for name in cnn.KERNEL_INITIALIZERS:
    cnn.build_model(pool_model(kernel_init=name))
  for name in optimizers.OPTIMIZERS:
    config = default.get_config()
    for schedule in optimizers.SCHEDULES:
      config.optimizer.update(dict(name=name, schedule=schedule, warmup_steps=5,
                                   weight_decay=1e-4))
      validation.validate(config)
      optimizers.make_optimizer(config.optimizer, 100)


@pytest.mark.parametrize('path, value, message', [
    ('seed', -5, r'seed=-5 must be between 0 and 4294967295'),
    ('train.batch_size', 0, r'train.batch_size=0 must be between 1 and 60000'),
    ('train.log_every_steps', 0, r'train.log_every_steps=0 must be a positive integer'),
    ('train.eval_batch_size', -5, r'train.eval_batch_size=-5 must be a positive integer'),
    ('train.checkpoint_every_epochs', -1, r'train.checkpoint_every_epochs=-1 must be >= 0'),
    ('train.steps_per_call', -1, r'train.steps_per_call=-1 must be >= 0'),
    ('train.num_epochs', 0.0, r'train.num_epochs=0.0 must be > 0'),
    ('train.num_devices', 64, r'train.num_devices=64 but there are 1 cpu device'),
    ('data.name', '../mnist', r"data.name='../mnist' is not a TFDS dataset name: letters"),
    ('data.split_seed', -1, r'data.split_seed=-1 must be between 0'),
    ('sweep.strategy', 'parallel', r"sweep.strategy='parallel' is not supported; allowed values: auto, sequential, vmap"),
    ('sweep.max_group_size', 0, r'sweep.max_group_size=0 must be a positive integer'),
    ('model.batch_norm', 'inside', r"model.batch_norm='inside' is not supported; allowed "
     r'values: none, before, after'),
    ('model.batch_norm_momentum', 1.0, r'model.batch_norm_momentum=1.0 must lie in \[0, 1\)'),
    ('model.batch_norm_epsilon', 0.0, r'model.batch_norm_epsilon=0.0 must be > 0'),
    ('model.compute_dtype', 'float16', r"model.compute_dtype='float16' is not supported; "
     r'allowed values: float32, bfloat16'),
    ('train.label_smoothing', 1.0, r'train.label_smoothing=1.0 must lie in \[0, 1\)'),
])
def test_invalid_fields_of_every_section(path, value, message):
  config = default.get_config()
  section, _, field = path.rpartition('.')
  (config[section] if section else config)[field] = value
  with pytest.raises(ConfigError, match=message):
    validation.validate(config)


def with_fields(**changes):
  """The default config (T2: 9,375 steps of 64) with {'section__field': value} changed."""
  config = default.get_config()
  for path, value in changes.items():
    section, field = path.split('__')
    config[section][field] = value
  return config


# Values that were accepted and then ignored or clamped, each an error now.
@pytest.mark.parametrize('changes, message', [
    (dict(train__num_train_steps=-5), r'train.num_train_steps=-5 must be a positive integer, '
     r'or -1 \(the default: train.num_epochs decides\)'),
    (dict(train__num_train_steps=0), r'train.num_train_steps=0 must be a positive integer'),
    # num_train_steps decides the length, but a negative num_epochs is still wrong.
    (dict(train__num_train_steps=100, train__num_epochs=-3.0), r'train.num_epochs=-3.0 must be > 0'),
    (dict(optimizer__learning_rate=float('inf')), r'optimizer.learning_rate=inf must be a finite '
     r'number'),
    (dict(optimizer__weight_decay=float('inf')), r'optimizer.weight_decay=inf must be a finite'),
    (dict(model__kernel_init_value=float('-inf')), r'model.kernel_init_value=-inf must be a finite'),
    # glorot_uniform and zeros draw nothing from the std, which was then kept silently.
    (dict(model__kernel_init_std=-0.1), r'model.kernel_init_std=-0.1 must be > 0'),
    (dict(model__bias_init_std=0.0), r'model.bias_init_std=0.0 must be > 0'),
    # elastic_alpha is 0: sigma was not checked.
    (dict(augment__elastic_sigma=-1.0), r'augment.elastic_sigma=-1.0 must lie in \(0, 28\]'),
    # Calls end at log steps and evaluations: more steps per call never ran.
    (dict(train__steps_per_call=201), r'train.steps_per_call=201 must be between 0 and 200: a '
     r'call ends at every log step \(train.log_every_steps=200\)'),
    (dict(train__steps_per_call=60, train__eval_every_steps=50),
     r'train.steps_per_call=60 must be between 0 and 50'),
])
def test_values_once_ignored_or_clamped_are_errors(changes, message):
  with pytest.raises(ConfigError, match=message):
    validation.validate(with_fields(**changes))


@pytest.mark.parametrize('changes', [
    dict(train__num_train_steps=-1), dict(train__num_train_steps=1),
    dict(train__steps_per_call=200),
    dict(train__steps_per_call=50, train__eval_every_steps=50),
    dict(augment__elastic_sigma=28.0), dict(model__kernel_init_std=1e-6),
])
def test_the_edges_of_those_ranges_are_allowed(changes):
  validation.validate(with_fields(**changes))


def with_segments(starts=(0, 100), seeds=(0, 1), paths=('optimizer.learning_rate',),
                  levels=((0.1, 0.05),), **changes):
  """The default config (T2: 9,375 steps; dense dropout 0.5) with segments."""
  config = with_fields(**changes)
  config.segments.update(dict(starts=starts, seeds=seeds, paths=paths, levels=levels))
  return config


# Segments (a population member's history, engine/segments.py): each rule one line.
@pytest.mark.parametrize('segments, message', [
    (dict(starts=(5, 100)), r'segments.starts=\(5, 100\) must increase from 0 and stay below '
     r"the run's 9375 steps"),
    (dict(starts=(0, 100, 50), seeds=(0, 1, 2), levels=((0.1, 0.05, 0.1),)),
     r'segments.starts=\(0, 100, 50\) must increase'),
    (dict(starts=(0, 9375)), r"stay below the run's 9375 steps"),
    (dict(seeds=(0,)), r'segments: starts has 2 entries, so seeds needs 2 and levels one tuple '
     r'of 2 per path \(1\)'),
    (dict(levels=((0.1,),)), r'segments: starts has 2 entries'),
    (dict(paths=('model.conv_features',), levels=((1, 2),)),
     r"segments.paths\[0\]='model.conv_features' is not supported; allowed values: "
     r'model.conv_dropout'),
    (dict(paths=('model.dense_dropout',), levels=((0.5, 1.5),), model__dense_dropout=0.5),
     r'model.dense_dropout=1.5 must lie in \[0, 1\)'),
    (dict(paths=('model.dense_dropout',), levels=((0.5, 0.0),), model__dense_dropout=0.5),
     r'segments.levels for model.dense_dropout \(segment 1: 0.0\) must stay above 0, as '
     r'model.dense_dropout=0.5 does'),
    (dict(paths=('model.dense_dropout',), levels=((0.0, 0.2),)),
     r'\(segment 1: 0.2\) must stay 0, as model.dense_dropout=0.0 does'),
    (dict(levels=(('fast', 0.1),)), r"segments.levels\[0\]=\('fast', 0.1\) must be a tuple "
     r'of numbers'),
    (dict(seeds=(0, -1)), r'segments.seeds\[1\]=-1 must'),
])
def test_bad_segments_are_one_line_naming_the_field(segments, message):
  with pytest.raises(ConfigError, match=message) as error:
    validation.validate(with_segments(**segments))
  assert '\n' not in str(error.value)


def test_good_segments_validate():
  validation.validate(with_segments())
  validation.validate(with_segments(starts=(), seeds=(), paths=(), levels=()))


def test_a_model_too_large_for_memory_names_its_size():
  config = default.get_config()
  config.model.hidden_dims = (100_000_000,)
  with pytest.raises(ConfigError, match=r'model: 26,700,003,434 parameters need about .* GB to '
                     r'train .* but this machine \(cpu\) has .* GB available'):
    validation.validate(config)


def test_the_default_and_every_experiment_validate():
  import glob, os  # pylint: disable=g-import-not-at-top,multiple-imports
  from cnn_jax.config import files  # pylint: disable=g-import-not-at-top
  validation.validate(default.get_config())
  for path in glob.glob(os.path.join(files.REPO_ROOT, 'experiments', '[!_]*.py')):
    validation.validate(files.load_config(path))
