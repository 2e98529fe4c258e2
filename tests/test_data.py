"""Validation splits as the tutorials make them; reading, caching and preparing a split, and a
clear error for missing data."""
import pathlib
import shutil
import sys
import types

import numpy as np
import pytest

from cnn_jax import errors
from cnn_jax.config import validation
from cnn_jax.data import batches
from cnn_jax.data import datasets as data
from cnn_jax.data import prepared
from experiments import default
from tests import prepared_data


def fake_splits(num_train=600, num_test=500):
  rng = np.random.default_rng(0)
  def split(n):
    return data.Split(rng.integers(0, 255, (n, 28, 28, 1), dtype=np.uint8),
                      rng.integers(0, 10, n).astype(np.int32))
  return split(num_train), split(num_test)


def test_no_validation():
  train, test = fake_splits()
  assert data.make_validation_split(train, test, 'none', 0, 0) == (train, None, test)


def test_train_head_takes_the_first_images():
  train, test = fake_splits()
  new_train, val, new_test = data.make_validation_split(train, test, 'train_head', 50, 0)
  np.testing.assert_array_equal(val.images, train.images[:50])
  np.testing.assert_array_equal(new_train.images, train.images[50:])
  assert new_test is test


def test_train_random_is_seeded_and_disjoint():
  train, test = fake_splits()
  first = data.make_validation_split(train, test, 'train_random', 100, seed=3)
  again = data.make_validation_split(train, test, 'train_random', 100, seed=3)
  other = data.make_validation_split(train, test, 'train_random', 100, seed=4)
  np.testing.assert_array_equal(first[1].images, again[1].images)
  assert not np.array_equal(first[1].images, other[1].images)
  assert len(first[0]) == 500 and len(first[1]) == 100
  together = np.concatenate([first[0].images, first[1].images]).reshape(600, -1)
  assert len(np.unique(together, axis=0)) == len(np.unique(train.images.reshape(600, -1), axis=0))


def test_test_stratified_keeps_label_proportions():
  train, test = fake_splits(num_test=500)
  _, val, rest = data.make_validation_split(train, test, 'test_stratified', 200, seed=0)
  assert len(val) == 200 and len(rest) == 300
  test_share = np.bincount(test.labels, minlength=10) / len(test)
  val_share = np.bincount(val.labels, minlength=10) / len(val)
  assert np.all(np.abs(test_share - val_share) <= 1 / 200 + 1e-9)  # within one image per class


def test_stratified_indices_sum_exactly():
  labels = np.repeat(np.arange(10), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
  chosen = data.stratified_indices(labels, 2000, np.random.default_rng(0))
  assert len(chosen) == len(np.unique(chosen)) == 2000
  counts = np.bincount(labels[chosen])
  np.testing.assert_allclose(counts, 2000 * np.bincount(labels) / 10_000, atol=1)


@pytest.mark.parametrize('mode, size, message', [
    ('kfold', 10, r"data.validation='kfold' is not supported; allowed values: none"),
    ('none', 100, r"data.num_validation=100 but data.validation is 'none'"),
    ('train_random', 0, r'data.num_validation=0 must lie between 1 and'),
    ('test_stratified', 10_000, r'data.num_validation=10000 must lie between 1 and 9999 \(the test split of mnist'),
])
def test_bad_validation_configs(mode, size, message, mnist_described):
  config = default.get_config().data
  config.update(dict(validation=mode, num_validation=size))
  with pytest.raises(errors.ConfigError, match=message):
    validation.validate_data(config)


def test_missing_dataset_says_where_it_looked(tmp_path):
  config = default.get_config().data
  config.data_dir = str(tmp_path / 'nowhere')
  with pytest.raises(errors.DatasetNotFoundError) as info:
    data.load_splits(config)
  text = str(info.value)
  assert str(tmp_path / 'nowhere') in text and 'TFDS_DATA_DIR' in text
  assert 'data.data_dir' in text and "'.[prepare]'" in text and 'data.download=True' in text


def test_data_dir_precedence(monkeypatch, tmp_path):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'env'))
  assert data.resolve_data_dir(str(tmp_path / 'cfg')) == str(tmp_path / 'cfg')
  assert data.resolve_data_dir('') == str(tmp_path / 'env')
  monkeypatch.delenv('TFDS_DATA_DIR')
  assert data.resolve_data_dir('').endswith('tensorflow_datasets')


def test_batches_stream_over_epochs_like_cntk():
  order = batches.ShuffledBatches(num_examples=10, batch_size=4, seed=0)
  stream = np.concatenate([order.indices(s) for s in range(5)])  # 20 positions = 2 epochs
  assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
  assert not np.array_equal(stream[:10], stream[10:])  # reshuffled each epoch
  again = batches.ShuffledBatches(10, 4, seed=0)
  np.testing.assert_array_equal(again.indices(3), order.indices(3))  # resumable
  assert order.epochs_completed(2) == 0 and order.epochs_completed(3) == 1


def test_t1_step_count():
  config = default.get_config().train
  assert batches.total_train_steps(config, 60_000) == 9_375  # 10 passes at minibatch 64
  config.num_train_steps = 1_100
  assert batches.total_train_steps(config, 55_000) == 1_100


def test_a_split_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('CNN_JAX_CACHE', str(tmp_path / 'cache'))
  splits = prepared_data.write_prepared(tmp_path / 'tfds', {'train': 64, 'test': 16})
  decoded = []
  def read_split(found, read=prepared.read_split):
    decoded.append(found.version)
    return read(found)
  monkeypatch.setattr(prepared, 'read_split', read_split)
  def load():
    data.load_tfds_split.cache_clear()
    return data.load_tfds_split('mnist', 'train', str(tmp_path / 'tfds'), False)
  for _ in range(2):
    loaded = load()
    np.testing.assert_array_equal(loaded.images, splits['train'].images)
    np.testing.assert_array_equal(loaded.labels, splits['train'].labels)
  assert decoded == ['3.0.1']  # the second process-level read came from the cache
  # Other prepared bytes (a re-prepared dataset) are another key: decoded again.
  shutil.rmtree(tmp_path / 'tfds')
  splits = prepared_data.write_prepared(tmp_path / 'tfds', {'train': 64, 'test': 16}, seed=1)
  np.testing.assert_array_equal(load().images, splits['train'].images)
  assert decoded == ['3.0.1', '3.0.1']
  data.load_tfds_split.cache_clear()


def test_download_without_tfds_says_how_to_install_it(tmp_path, monkeypatch):
  for module in ('tensorflow', 'tensorflow_datasets'):  # import fails, as when not installed
    monkeypatch.setitem(sys.modules, module, None)
  with pytest.raises(errors.DatasetNotFoundError,
                     match=r"prepares 'mnist' in .* with TFDS, which is not installed here .*"
                           r"pip install -e '\.\[prepare\]'"):
    data.load_tfds_split('mnist', 'train', str(tmp_path / 'nowhere'), True)


def test_download_prepares_with_tfds_once_then_reads_the_files(tmp_path, monkeypatch):
  calls, written = [], {}
  class Builder:  # what tfds.builder(name, data_dir=...) gives, as far as this code uses it
    def __init__(self, name, data_dir):
      self.name, self.data_dir = name, data_dir
    def download_and_prepare(self):
      calls.append((self.name, self.data_dir))
      written.update(prepared_data.write_prepared(pathlib.Path(self.data_dir),
                                                  {'train': 32, 'test': 16}))
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', types.SimpleNamespace(builder=Builder))
  hidden_gpus = []
  monkeypatch.setitem(sys.modules, 'tensorflow', types.SimpleNamespace(config=types.SimpleNamespace(
      set_visible_devices=lambda devices, kind: hidden_gpus.append((devices, kind)))))
  data.load_tfds_split.cache_clear()
  train = data.load_tfds_split('mnist', 'train', str(tmp_path), True)
  test = data.load_tfds_split('mnist', 'test', str(tmp_path), True)
  assert calls == [('mnist', str(tmp_path))]  # prepared once, for both splits
  assert hidden_gpus == [([], 'GPU')]  # TensorFlow leaves the GPU to JAX
  np.testing.assert_array_equal(train.images, written['train'].images)
  np.testing.assert_array_equal(test.labels, written['test'].labels)
  data.load_tfds_split.cache_clear()
