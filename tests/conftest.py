"""Shared fixtures: fake MNIST through tfds.testing.mock_data, tiny configs, real-data paths."""
import os

import pytest

from cnn_jax.data import datasets as data
from experiments import default

REAL_TFDS_DIR = os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'tfds'))


@pytest.fixture
def mock_mnist(monkeypatch):
  """Random MNIST-shaped data (images and labels) of `num_examples` per split."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  # The mock replaces TFDS's reading, not the prepared files the array cache is keyed on.
  monkeypatch.setenv(data.CACHE_SWITCH, '0')
  data.load_tfds_split.cache_clear()  # never serve a cached split across fixtures
  with tfds.testing.mock_data(num_examples=256):
    yield
  data.load_tfds_split.cache_clear()


@pytest.fixture
def tiny_config():
  """T2's architecture with a short run: 12 steps of 32 on 256 mock images."""
  config = default.get_config()
  config.model.conv_features = (4, 8)
  config.train.batch_size = 32
  config.train.num_epochs = 1.5
  config.train.log_every_steps = 4
  config.train.eval_batch_size = 100
  config.optimizer.learning_rate = 0.1
  return config


def real_data_or_skip() -> str:
  """$TFDS_DATA_DIR if it holds MNIST, else ../shared/data/tfds; skips the test if neither."""
  candidates = [os.environ.get('TFDS_DATA_DIR', ''), REAL_TFDS_DIR]
  for directory in filter(None, candidates):
    if os.path.isdir(os.path.join(directory, 'mnist')):
      return os.path.abspath(directory)
  pytest.skip(f'real MNIST not prepared in $TFDS_DATA_DIR or at {REAL_TFDS_DIR}')
