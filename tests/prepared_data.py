"""Writes a small, seeded image-classification dataset in TFDS's prepared layout, for tests:
MNIST-like (28x28x1, 10 classes) unless told another image shape and class count.

The layout and encoding are what TFDS's own builder writes (see ../shared/data/tfds/mnist):
<root>/<name>/<version>/dataset_info.json and features.json beside shard files of
tf.train.Example protos ('image': PNG bytes, 'label': int64). tfrecord framing comes from
TensorBoard's record writer and array_record from its own writer, not from the reader under
test. The Example protos are built with the reader's own message class: the real-data tests
check it against files TFDS wrote.
"""
import io
import json
import math

import numpy as np
from PIL import Image
from tensorboard.summary.writer import record_writer

from cnn_jax.data import datasets as data
from cnn_jax.data import records as records_lib

TEMPLATE = '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}'


def write_prepared(root, sizes, name='mnist', version='3.0.1', file_format='tfrecord',
                   num_shards=1, seed=0, learnable=False, image_shape=(28, 28, 1),
                   num_classes=10) -> dict:
  """Writes splits of random images of `image_shape` (height, width, channels) and labels
  below `num_classes` (`sizes`: {split: count}) under root and returns them as
  {split: datasets.Split}, in the order written. `learnable`: each image also carries a
  bright patch whose place says its label, so that a few steps of training separate good
  hyperparameters from bad ones (the search tests). `name` may be '<dataset>/<config>', as
  TFDS lays out a builder config."""
  version_dir = root / name / version
  builder = name.split('/')[0]  # TFDS names the shards and dataset_info.json after it
  version_dir.mkdir(parents=True)
  rng = np.random.default_rng(seed)
  splits, lengths = {}, {}
  for split, size in sizes.items():
    images = rng.integers(0, 256, (size, *image_shape), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size).astype(np.int32)
    if learnable:
      images //= 3
      for i, label in enumerate(labels):
        top, left, height, width = _patch(label, image_shape, num_classes)
        images[i, top:top + height, left:left + width] = 255
    splits[split] = data.Split(images, labels)
    shards = np.array_split(np.arange(size), num_shards)
    for index, shard in enumerate(shards):
      path = version_dir / f'{builder}-{split}.{file_format}-{index:05d}-of-{num_shards:05d}'
      write_records(path, file_format, [example(images[i], labels[i]) for i in shard])
    lengths[split] = [len(s) for s in shards]
  write_description(version_dir, builder, lengths, file_format, image_shape, num_classes)
  return splits


def write_description(version_dir, name, lengths, file_format='tfrecord',
                      image_shape=(28, 28, 1), num_classes=10) -> None:
  """dataset_info.json and features.json as TFDS writes them (`lengths`: {split: [examples
  per shard]}); alone, without shards, they are all that validation reads."""
  version_dir.mkdir(parents=True, exist_ok=True)
  info = {'name': name, 'version': version_dir.name, 'fileFormat': file_format,
          'splits': [{'name': split, 'filepathTemplate': TEMPLATE,
                      'shardLengths': [str(n) for n in shard_lengths]}
                     for split, shard_lengths in lengths.items()],
          'supervisedKeys': {'tuple': {'items': [{'featureKey': 'image'},
                                                 {'featureKey': 'label'}]}}}
  (version_dir / 'dataset_info.json').write_text(json.dumps(info, indent=2))
  features = {'featuresDict': {'features': {
      'image': {'image': {'dtype': 'uint8',
                          'shape': {'dimensions': [str(d) for d in image_shape]}},
                'pythonClassName': 'tensorflow_datasets.core.features.image_feature.Image'},
      'label': {'classLabel': {'numClasses': str(num_classes)},
                'pythonClassName':
                    'tensorflow_datasets.core.features.class_label_feature.ClassLabel'}}}}
  (version_dir / 'features.json').write_text(json.dumps(features, indent=2))


def _patch(label: int, image_shape, num_classes: int) -> tuple[int, int, int, int]:
  """(top, left, height, width) of the label's patch: one cell of a grid of 5 columns, as
  MNIST-shaped data always had it (at row 2 + 12 (label // 5), column 2 + 5 (label % 5))."""
  columns = min(num_classes, 5)
  rows = math.ceil(num_classes / columns)
  cell_height, cell_width = (image_shape[0] - 4) // rows, (image_shape[1] - 3) // columns
  assert cell_height >= 2 and cell_width >= 2, f'{image_shape} is too small to be learnable'
  return (2 + cell_height * (label // columns), 2 + cell_width * (label % columns),
          cell_height * 2 // 3, cell_width - 1)


def example(image: np.ndarray, label: int) -> bytes:
  png = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(png, 'PNG')  # L, RGB
  proto = records_lib.Example()
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
