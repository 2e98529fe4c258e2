"""Writes a small, seeded MNIST-like dataset in TFDS's prepared layout, for tests.

The layout and encoding are what TFDS's own builder writes (see ../shared/data/tfds/mnist):
<root>/<name>/<version>/dataset_info.json and features.json beside shard files of
tf.train.Example protos ('image': PNG bytes, 'label': int64). tfrecord framing comes from
TensorBoard's record writer and array_record from its own writer, not from the reader under
test. The Example protos are built with the reader's own message class: the real-data tests
check it against files TFDS wrote.
"""
import io
import json

import numpy as np
from PIL import Image
from tensorboard.summary.writer import record_writer

from cnn_jax.data import datasets as data
from cnn_jax.data import prepared

TEMPLATE = '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}'


def write_prepared(root, sizes, name='mnist', version='3.0.1', file_format='tfrecord',
                   num_shards=1, seed=0, learnable=False) -> dict:
  """Writes splits of random 28x28x1 images and labels (`sizes`: {split: count}) under root
  and returns them as {split: datasets.Split}, in the order written. `learnable`: each image
  also carries a bright square whose place says its label, so that a few steps of training
  separate good hyperparameters from bad ones (the search tests)."""
  version_dir = root / name / version
  version_dir.mkdir(parents=True)
  rng = np.random.default_rng(seed)
  splits, split_infos = {}, []
  for split, size in sizes.items():
    images = rng.integers(0, 256, (size, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, size).astype(np.int32)
    if learnable:
      images //= 3
      for i, label in enumerate(labels):
        row, column = 2 + 12 * (label // 5), 2 + 5 * (label % 5)
        images[i, row:row + 8, column:column + 4] = 255
    splits[split] = data.Split(images, labels)
    shards = np.array_split(np.arange(size), num_shards)
    for index, shard in enumerate(shards):
      path = version_dir / f'{name}-{split}.{file_format}-{index:05d}-of-{num_shards:05d}'
      write_records(path, file_format, [example(images[i], labels[i]) for i in shard])
    split_infos.append({'name': split, 'filepathTemplate': TEMPLATE,
                        'shardLengths': [str(len(s)) for s in shards]})
  info = {'name': name, 'version': version, 'fileFormat': file_format, 'splits': split_infos,
          'supervisedKeys': {'tuple': {'items': [{'featureKey': 'image'},
                                                 {'featureKey': 'label'}]}}}
  (version_dir / 'dataset_info.json').write_text(json.dumps(info, indent=2))
  features = {'featuresDict': {'features': {
      'image': {'image': {'dtype': 'uint8', 'shape': {'dimensions': ['28', '28', '1']}}},
      'label': {'classLabel': {'numClasses': '10'}}}}}
  (version_dir / 'features.json').write_text(json.dumps(features, indent=2))
  return splits


def example(image: np.ndarray, label: int) -> bytes:
  png = io.BytesIO()
  Image.fromarray(image[..., 0], 'L').save(png, 'PNG')
  proto = prepared.Example()
  proto.features.feature['image'].bytes_list.value.append(png.getvalue())
  proto.features.feature['label'].int64_list.value.append(int(label))
  return proto.SerializeToString()


def write_records(path, file_format: str, records: list[bytes]) -> None:
  if file_format == 'tfrecord':
    writer = record_writer.RecordWriter(open(path, 'wb'))
  else:
    from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
    writer = array_record_module.ArrayRecordWriter(str(path), 'group_size:1')  # as TFDS writes
  for record in records:
    writer.write(record)
  writer.close()
