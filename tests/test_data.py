"""Validation splits as the tutorials make them, and a clear error for missing data."""
import numpy as np
import pytest

from cnn_jax import errors
from cnn_jax.config import validation
from cnn_jax.data import batches
from cnn_jax.data import datasets as data
from experiments import default


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
def test_bad_validation_configs(mode, size, message):
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
  assert 'data.data_dir' in text


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


def fake_prepared_dataset(root, sizes=(('train', 96), ('test', 32))):
  """A TFDS-like prepared directory (record files whose bytes key the cache) and the arrays
  to cache for it."""
  version_dir = root / 'mnist' / '3.0.1'
  version_dir.mkdir(parents=True)
  rng = np.random.default_rng(0)
  splits = {}
  for split, n in sizes:
    (version_dir / f'mnist-{split}.tfrecord-00000-of-00001').write_bytes(split.encode() * 7)
    splits[split] = data.Split(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                               rng.integers(0, 10, n).astype(np.int32))
  return splits


def test_a_split_is_read_through_tfds_once_then_from_the_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('CNN_JAX_CACHE', str(tmp_path / 'cache'))
  splits = fake_prepared_dataset(tmp_path / 'tfds')
  reads = []
  def read_with_tfds(name, split, data_dir, download):
    reads.append(split)
    return splits[split]
  monkeypatch.setattr(data, 'read_with_tfds', read_with_tfds)
  for _ in range(2):
    data.load_tfds_split.cache_clear()
    loaded = data.load_tfds_split('mnist', 'train', str(tmp_path / 'tfds'), False)
    np.testing.assert_array_equal(loaded.images, splits['train'].images)
    np.testing.assert_array_equal(loaded.labels, splits['train'].labels)
  assert reads == ['train']  # the second process-level read came from the cache
  # Other prepared bytes (a re-prepared dataset) are another key: read through TFDS again.
  (tmp_path / 'tfds' / 'mnist' / '3.0.1' / 'mnist-train.tfrecord-00000-of-00001').write_bytes(b'x')
  data.load_tfds_split.cache_clear()
  data.load_tfds_split('mnist', 'train', str(tmp_path / 'tfds'), False)
  assert reads == ['train', 'train']
  data.load_tfds_split.cache_clear()
