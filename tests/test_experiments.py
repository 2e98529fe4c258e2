"""Every tutorial experiment matches ../shared/TUTORIALS.md and runs."""
import os
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import train
from cnn_jax.config import files as experiment_files
from cnn_jax.config import validation
from cnn_jax.data import batches
from cnn_jax.data import datasets as data
from cnn_jax.engine import results
from cnn_jax.model import cnn as models

# experiment -> (params, optimizer, learning rate, batch, steps, (train, validation, test)).
# Step counts: epochs * train images / batch, rounded up (batches run on across epochs).
TUTORIAL_RECIPES = {
    'experiments/conv.py': (11_274, 'sgd', 0.2, 64, 9_375, (60_000, 0, 10_000)),
    'experiments/pool.py': (5_994, 'sgd', 0.2, 64, 9_375, (60_000, 0, 10_000)),
    'experiments/pool.py:variant=slides': (4_874, 'sgd', 0.2, 64, 9_375, (60_000, 0, 10_000)),
    'experiments/keras_cnn.py': (1_199_882, 'adam', 1e-3, 256, 1_172, (60_000, 2_000, 8_000)),
    'experiments/lenet_small.py': (38_390, 'rmsprop', 1e-4, 128, 19_532, (50_000, 10_000, 10_000)),
    'experiments/softmax.py': (7_850, 'sgd', 0.5, 50, 1_000, (55_000, 5_000, 10_000)),
    'experiments/tf_deep_cnn.py': (3_274_634, 'adam', 1e-4, 50, 1_100, (55_000, 5_000, 10_000)),
    'experiments/tf_deep_cnn.py:variant=full': (3_274_634, 'adam', 1e-4, 50, 20_000,
                                                (55_000, 5_000, 10_000)),
}
# Experiments of this project's own, checked alike: the speedrun record's recipe is the one
# its docstring measured (1 epoch of 60,000 at batch 128, 469 steps; batch norm's scale and
# offset are 352 of the parameters).
OWN_RECIPES = {
    'experiments/speedrun.py': (207_530, 'adam', 3e-2, 128, 469, (60_000, 0, 10_000)),
    'experiments/best.py': (871_530, 'adam', 2e-3, 128, 3_750, (60_000, 0, 10_000)),
}
RECIPES = {**TUTORIAL_RECIPES, **OWN_RECIPES}
MNIST_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def full_size_fake_mnist():
  rng = np.random.default_rng(0)
  train_split = data.Split(np.zeros((60_000, 1, 1, 1), np.uint8),
                           rng.integers(0, 10, 60_000).astype(np.int32))
  test_labels = np.repeat(np.arange(10), MNIST_TEST_LABEL_COUNTS).astype(np.int32)
  return train_split, data.Split(np.zeros((10_000, 1, 1, 1), np.uint8), test_labels)


@pytest.mark.parametrize('spec', sorted(RECIPES))
def test_experiment_follows_the_tutorial(spec, mnist_described):
  params, optimizer, lr, batch, steps, sizes = RECIPES[spec]
  config = experiment_files.load_config(spec)
  validation.validate(config)
  model = models.build_model(config.model)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                                train=False))
  assert models.count_params(variables['params']) == params
  assert (config.optimizer.name, config.optimizer.learning_rate) == (optimizer, lr)
  assert config.train.batch_size == batch
  train_split, test_split = full_size_fake_mnist()
  new_train, val_split, new_test = data.make_validation_split(
      train_split, test_split, config.data.validation, config.data.num_validation,
      config.data.split_seed)
  assert (len(new_train), len(val_split) if val_split else 0, len(new_test)) == sizes
  assert batches.total_train_steps(config.train, len(new_train)) == steps


def test_t3_validation_is_stratified_from_the_test_set():
  config = experiment_files.load_config('experiments/keras_cnn.py')
  train_split, test_split = full_size_fake_mnist()
  _, validation, rest = data.make_validation_split(
      train_split, test_split, config.data.validation, config.data.num_validation, 0)
  np.testing.assert_allclose(np.bincount(validation.labels),
                             np.array(MNIST_TEST_LABEL_COUNTS) / 5, atol=1)
  assert len(rest) == 8_000


@pytest.mark.parametrize('spec', sorted(RECIPES))
def test_experiment_runs_a_few_steps(spec, tmp_path, mock_mnist):
  config = experiment_files.load_config(spec)
  config.train.num_train_steps = 2
  config.train.batch_size = min(config.train.batch_size, 64)
  config.train.eval_batch_size = 64
  config.model.conv_impl = config.model.pool_impl = 'xla'  # (no layer timing: test_layers)
  if config.data.validation != 'none':
    config.data.num_validation = 32  # mock splits hold 256 images
  # Pictures cost seconds per run; drawn here for the models unlike T2 (test_pictures): no
  # convolution, a validation split and dropout.
  drawn = spec in ('experiments/softmax.py', 'experiments/keras_cnn.py')
  config.train.pictures = 'end' if drawn else 'none'
  out = train.train_and_evaluate(config, str(tmp_path))
  assert out['status'] == 'ok' and out['steps'] == 2
  pictures = sorted(os.listdir(tmp_path / 'pictures')) if drawn else []
  if spec == 'experiments/softmax.py':
    assert pictures == ['confidently_wrong.png', 'confusion_test.png',
                        'confusion_validation.png', 'learning_curves.png',
                        'predictions.png']  # no filters or activation maps without a conv
  elif drawn:
    assert 'confusion_validation.png' in pictures and 'activations.png' in pictures
  assert np.isfinite(results.final_metric(out, 'test', 'error'))


def test_unknown_variant_is_refused():
  with pytest.raises(ValueError, match=r"variant='huge' is not supported; allowed values: tutorial, slides"):
    experiment_files.load_config('experiments/pool.py:variant=huge')
  with pytest.raises(ValueError, match=r"config argument 'size=3' is not understood; allowed: variant=..."):
    experiment_files.load_config('experiments/pool.py:size=3')


def test_config_arguments_take_their_default_s_type_or_name_it():
  from cnn_jax.config import arguments  # pylint: disable=g-import-not-at-top
  parsed = arguments.parse('trials=8,fast=no,rate=0.5', trials=24, fast=True, rate=1.0)
  assert (parsed.trials, parsed.fast, parsed.rate) == (8, False, 0.5)
  with pytest.raises(ValueError, match=r"fast='ya' is not understood; allowed values: true, "
                     'false'):
    arguments.parse('fast=ya', fast=True)  # not silently False
  with pytest.raises(ValueError, match=r"rate='x' is not understood; allowed values: a number"):
    arguments.parse('rate=x', rate=1.0)
