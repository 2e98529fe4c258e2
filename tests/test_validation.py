"""A config that cannot work fails before training, naming the field and what is allowed."""
import pytest

from cnn_jax import architectures
from cnn_jax import models
from cnn_jax import optim
from experiments import default


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
    (dict(conv_dropout=1.0), r'model.conv_dropout=1.0: a dropout rate must lie in \[0, 1\)'),
    (dict(kernel_init='normal', kernel_init_std=0.0), r'model.kernel_init_std=0.0 must be > 0'),
    # Layers whose output would be empty name themselves and their input size.
    (dict(pool_window=(2, 15)), r'layer pool1 \(max pool window 15, stride 3, padding VALID\) gets a 14x14 input'),
    (dict(conv_strides=(30, 1)), r'layer pool0 .* gets a 1x1 input'),
    (dict(conv_padding=('VALID', 'VALID'), conv_kernel_size=(5, 13)), r'layer conv1 \(conv window 13.*12x12 input'),
])
def test_invalid_model_configs(changes, message):
  with pytest.raises(ValueError, match=message):
    models.build_model(pool_model(**changes))


@pytest.mark.parametrize('changes, message', [
    (dict(name='lbfgs'), r"optimizer.name='lbfgs' is not supported; allowed values: sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw"),
    (dict(schedule='step'), r"optimizer.schedule='step' .* allowed values: constant, cosine"),
    (dict(learning_rate=0.0), r'optimizer.learning_rate=0.0 must be > 0'),
])
def test_invalid_optimizer_configs(changes, message):
  config = default.get_config().optimizer
  config.update(changes)
  with pytest.raises(ValueError, match=message):
    optim.make_optimizer(config, 100)


def test_every_allowed_value_builds():
  for activation in models.ACTIVATIONS:
    models.build_model(pool_model(activation=activation))
  for pool in models.POOL_TYPES:
    models.build_model(pool_model(pool_type=(pool, pool)))
  for name in models.KERNEL_INITIALIZERS:
    models.build_model(pool_model(kernel_init=name))
  for name in optim.OPTIMIZERS:
    config = default.get_config().optimizer
    for schedule in optim.SCHEDULES:
      config.update(dict(name=name, schedule=schedule, warmup_steps=5, weight_decay=1e-4))
      optim.make_optimizer(config, 100)


@pytest.mark.parametrize('field, value, message', [
    ('log_every_steps', 0, r'train.log_every_steps=0 must be a positive integer'),
    ('eval_batch_size', -5, r'train.eval_batch_size=-5 must be a positive integer'),
    ('checkpoint_every_epochs', -1, r'train.checkpoint_every_epochs=-1 must be >= 0'),
    ('steps_per_call', -1, r'train.steps_per_call=-1 must be >= 0'),
])
def test_invalid_train_configs(field, value, message, tmp_path):
  from cnn_jax import train  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.train[field] = value
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(config, str(tmp_path))  # fails before reading any data
