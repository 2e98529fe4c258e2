"""The TensorFlow-free reader of TFDS-prepared splits: small written datasets, and the real
MNIST in ../shared/data against what tfds.load gives."""
import hashlib
import json
import os
import struct

import numpy as np
import pytest

from cnn_jax import errors
from cnn_jax.data import prepared
from tests import prepared_data
from tests.conftest import REAL_TFDS_DIR, real_data_or_skip


@pytest.mark.parametrize('file_format', ['tfrecord', 'array_record'])
def test_every_shard_is_read_in_order(tmp_path, file_format):
  splits = prepared_data.write_prepared(tmp_path, {'train': 50, 'test': 7},
                                        file_format=file_format, num_shards=3)
  for split, written in splits.items():
    found = prepared.find_split('mnist', split, str(tmp_path))
    assert [os.path.basename(f) for f in found.files] == [
        f'mnist-{split}.{file_format}-0000{i}-of-00003' for i in range(3)]
    images, labels = prepared.read_split(found)
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, written.images)
    np.testing.assert_array_equal(labels, written.labels)


def test_the_newest_complete_version_is_read(tmp_path):
  prepared_data.write_prepared(tmp_path, {'test': 4}, version='3.0.1')
  prepared_data.write_prepared(tmp_path, {'test': 5}, version='3.10.0')
  # What TFDS leaves behind while (or after failing at) preparing a newer version.
  (tmp_path / 'mnist' / '3.11.0.incomplete7Q2ZP').mkdir()
  (tmp_path / 'mnist' / '4.0.0').mkdir()
  found = prepared.find_split('mnist', 'test', str(tmp_path))
  assert (found.version, found.num_examples) == ('3.10.0', 5)
  assert prepared.find_split('mnist', 'train', str(tmp_path)) is None
  assert prepared.find_split('kmnist', 'test', str(tmp_path)) is None


def test_a_damaged_or_truncated_record_is_reported(tmp_path):
  prepared_data.write_prepared(tmp_path, {'test': 3})
  path = tmp_path / 'mnist' / '3.0.1' / 'mnist-test.tfrecord-00000-of-00001'
  intact = path.read_bytes()
  second = 12 + struct.unpack_from('<Q', intact)[0] + 4  # where the second record starts
  damaged = bytearray(intact)
  damaged[second + 12 + 10] ^= 0x01  # one bit of its data
  path.write_bytes(bytes(damaged))
  with pytest.raises(errors.CorruptDatasetError,
                     match=f'the record at byte {second} fails its checksum: prepare it again'):
    prepared.read_split(prepared.find_split('mnist', 'test', str(tmp_path)))
  path.write_bytes(intact[:-2])
  with pytest.raises(errors.CorruptDatasetError, match='damaged or truncated at byte'):
    prepared.read_split(prepared.find_split('mnist', 'test', str(tmp_path)))


def test_a_missing_shard_or_example_is_reported(tmp_path):
  prepared_data.write_prepared(tmp_path, {'train': 6, 'test': 3}, num_shards=2)
  os.remove(tmp_path / 'mnist' / '3.0.1' / 'mnist-train.tfrecord-00001-of-00002')
  with pytest.raises(errors.CorruptDatasetError, match=r'train.tfrecord-00001-of-00002 is missing'):
    prepared.find_split('mnist', 'train', str(tmp_path))
  info_path = tmp_path / 'mnist' / '3.0.1' / 'dataset_info.json'
  info = json.loads(info_path.read_text())
  for lengths, message in ((['2', '2'], '3 examples where dataset_info.json lists 4'),
                           (['1', '1'], 'holds more examples than dataset_info.json lists')):
    info['splits'][1]['shardLengths'] = lengths  # the files hold 2 and 1
    info_path.write_text(json.dumps(info))
    with pytest.raises(errors.CorruptDatasetError, match=message):
      prepared.read_split(prepared.find_split('mnist', 'test', str(tmp_path)))


# sha256 of the images' bytes then the int32 labels' bytes, as tfds.load('mnist', split=...,
# data_dir=../shared/data/tfds) gave them on 2026-11-23 (TFDS 4.9.10, TensorFlow 2.21).
TFDS_LOAD_SHA256 = {'train': 'ef80b4281e56b21d', 'test': '670e94e863b684ad'}
LABEL_COUNTS = {  # ../shared/data/README.md
    'train': [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    'test': [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}


def sha256(images, labels):
  return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()[:16]


@pytest.mark.realdata
@pytest.mark.parametrize('form', ['tfds', 'tfds-array_record'])
def test_real_mnist_reads_as_tfds_load_gives_it(form):
  """Both prepared copies in ../shared/data: the same examples, in TFDS's order."""
  root = os.path.join(os.path.dirname(REAL_TFDS_DIR), form)
  if not os.path.isdir(os.path.join(root, 'mnist')):
    pytest.skip(f'no prepared MNIST in {root}')
  for split in ('train', 'test'):
    images, labels = prepared.read_split(prepared.find_split('mnist', split, root))
    assert np.bincount(labels).tolist() == LABEL_COUNTS[split]
    assert sha256(images, labels) == TFDS_LOAD_SHA256[split]


@pytest.mark.realdata
def test_real_mnist_test_split_equals_tfds_load():
  """The reference above, made again (with the `prepare` extra installed)."""
  data_dir = real_data_or_skip()
  pytest.importorskip('tensorflow')
  tfds = pytest.importorskip('tensorflow_datasets')
  dataset = tfds.as_numpy(tfds.load('mnist', split='test', data_dir=data_dir, batch_size=-1))
  images, labels = prepared.read_split(prepared.find_split('mnist', 'test', data_dir))
  np.testing.assert_array_equal(images, dataset['image'])
  np.testing.assert_array_equal(labels, dataset['label'])
  assert sha256(dataset['image'], dataset['label'].astype(np.int32)) == TFDS_LOAD_SHA256['test']
