"""Shared fixtures: fake prepared MNIST (whole, or only described), tiny configs, real-data
paths, a private cache, a PostgreSQL server (tests/postgres_server.py)."""
import os
import subprocess

import pytest

from cnn_jax.data import datasets as data
from experiments import default
from tests import prepared_data
from tests.postgres_server import postgres_url  # noqa: F401 (importing registers it)

REAL_TFDS_DIR = os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'tfds'))


@pytest.fixture(autouse=True, scope='session')
def private_cache(tmp_path_factory):
  """Every cache (data arrays, compiled programs) in a directory of this test session, for
  in-process runs and the subprocesses that inherit the environment: the tests never write
  ~/.cache, and never read what a run outside them left there."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('CNN_JAX_CACHE', str(tmp_path_factory.mktemp('cnn_jax_cache')))
    yield


@pytest.fixture(scope='session')
def mock_mnist_files(tmp_path_factory):
  """(directory, {split: Split}): random MNIST-shaped data, 256 images per split, prepared as
  TFDS would; written once, as every test may share it."""
  root = tmp_path_factory.mktemp('tfds')
  return str(root), prepared_data.write_prepared(root, {'train': 256, 'test': 256})


@pytest.fixture(scope='session')
def learnable_mnist_dir(tmp_path_factory):
  """A prepared MNIST whose labels can be learnt in a few steps (prepared_data's learnable):
  1,024 training and 256 test images."""
  root = tmp_path_factory.mktemp('tfds_learnable')
  prepared_data.write_prepared(root, {'train': 1024, 'test': 256}, learnable=True)
  return str(root)


@pytest.fixture(scope='session')
def mnist_described_dir(tmp_path_factory):
  """MNIST's dataset_info.json and features.json alone (60,000 and 10,000 images, no shard):
  all that validating a config reads of it."""
  root = tmp_path_factory.mktemp('tfds_described')
  prepared_data.write_description(root / 'mnist' / '3.0.1', 'mnist',
                                  {'train': [60_000], 'test': [10_000]})
  return str(root)


@pytest.fixture
def mnist_described(monkeypatch, mnist_described_dir):
  """$TFDS_DATA_DIR at mnist_described_dir, for tests that validate configs at MNIST's sizes."""
  monkeypatch.setenv('TFDS_DATA_DIR', mnist_described_dir)


@pytest.fixture
def mock_mnist(monkeypatch, mock_mnist_files):
  """$TFDS_DATA_DIR at the mock prepared MNIST; returns its {split: Split}."""
  root, splits = mock_mnist_files
  monkeypatch.setenv('TFDS_DATA_DIR', root)
  data.load_tfds_split.cache_clear()  # never serve a split across fixtures from memory
  yield splits
  data.load_tfds_split.cache_clear()


def tiny():
  """T2's architecture with a short run: 12 steps of 32 on 256 mock images (the tiny_config
  fixture; called directly by fixtures of a wider scope)."""
  config = default.get_config()
  config.model.conv_features = (4, 8)
  config.train.batch_size = 32
  config.train.num_epochs = 1.5
  config.train.log_every_steps = 4
  config.train.eval_batch_size = 100
  config.optimizer.learning_rate = 0.1
  config.train.pictures = 'none'  # seconds of matplotlib per run; test_pictures turns them on
  return config


@pytest.fixture
def tiny_config():
  return tiny()


def real_data_or_skip() -> str:
  """$TFDS_DATA_DIR if it holds MNIST, else ../shared/data/tfds; skips the test if neither."""
  candidates = [os.environ.get('TFDS_DATA_DIR', ''), REAL_TFDS_DIR]
  for directory in filter(None, candidates):
    if os.path.isdir(os.path.join(directory, 'mnist')):
      return os.path.abspath(directory)
  pytest.skip(f'real MNIST not prepared in $TFDS_DATA_DIR or at {REAL_TFDS_DIR}')


def train_until_first_checkpoint(config, workdir: str) -> None:
  """Trains `config` into `workdir` as if the process were killed right after writing its
  first checkpoint (the resume tests' starting point)."""
  from cnn_jax import train  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import checkpoint  # pylint: disable=g-import-not-at-top
  real_save = checkpoint.save

  def save_then_die(*args, **kwargs):
    real_save(*args, **kwargs)
    raise KeyboardInterrupt
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(checkpoint, 'save', save_then_die)
    with pytest.raises(KeyboardInterrupt):
      train.train_and_evaluate(config, workdir)


@pytest.fixture
def tmpfs(tmp_path):
  """tmpfs(size): a real filesystem of that size (mount -t tmpfs; root only, else the test is
  skipped), unmounted after the test: a full disk for the tests that need one."""
  mounts = []

  def mount(size: str):
    path = tmp_path / f'disk{len(mounts)}'
    path.mkdir()
    made = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                          capture_output=True, text=True)
    if made.returncode:
      pytest.skip(f'cannot mount a tmpfs here: {made.stderr.strip()}')
    mounts.append(path)
    return path
  yield mount
  for path in mounts:
    subprocess.run(['umount', '-l', str(path)], check=False)
