"""Reads one split of a dataset that TFDS prepared on disk, without TensorFlow or TFDS.

tfds.load needs TensorFlow (seconds to import, about 15 s to read MNIST on 2 CPU cores, and
absent from the GPU machine), and tensorflow_datasets cannot even be imported without it.
What TFDS leaves on disk is simple to read directly: <data_dir>/<name>/<version>/ holds
dataset_info.json (file format, each split's shard file names and lengths, which features
are input and label), features.json (the image shape), and shard files of serialized
tf.train.Example protos, one per example, as tfrecord or array_record. Pillow decodes the
encoded images. Examples come back in file order, as tfds.load gives them without shuffling.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
from typing import Iterator

import google_crc32c
import numpy as np
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from PIL import Image

from cnn_jax.errors import CorruptDatasetError


@dataclasses.dataclass(frozen=True)
class PreparedSplit:
  version: str
  file_format: str            # 'tfrecord' or 'array_record'
  files: tuple[str, ...]      # the shards, in order
  num_examples: int
  image_key: str
  label_key: str
  image_shape: tuple[int, ...]


# Shard names and format when dataset_info.json has no filepathTemplate or fileFormat, as
# TFDS wrote it before it had other formats and templates.
_DEFAULT_TEMPLATE = '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}'


def find_split(name: str, split: str, data_dir: str) -> PreparedSplit | None:
  """The split of the newest version of `name` prepared in data_dir; None if there is none.
  TFDS prepares into '<version>.incomplete<id>' and renames when done, so a version dir
  with dataset_info.json is complete."""
  root = os.path.join(data_dir, name)
  versions = [v for v in (os.listdir(root) if os.path.isdir(root) else [])
              if _is_version(v) and os.path.isfile(os.path.join(root, v, 'dataset_info.json'))]
  if not versions:
    return None
  version = max(versions, key=lambda v: tuple(int(p) for p in v.split('.')))
  version_dir = os.path.join(root, version)
  info = _read_json(version_dir, 'dataset_info.json')
  entry = next((s for s in info.get('splits', []) if s['name'] == split), None)
  if entry is None:
    return None
  file_format = info.get('fileFormat', 'tfrecord')
  template = entry.get('filepathTemplate', _DEFAULT_TEMPLATE)
  lengths = [int(n) for n in entry['shardLengths']]
  files = tuple(os.path.join(version_dir, _shard_name(template, name, split, file_format, i,
                                                      len(lengths)))
                for i in range(len(lengths)))
  missing = [f for f in files if not os.path.isfile(f)]
  if missing:
    raise CorruptDatasetError(f'{version_dir}/dataset_info.json lists {len(files)} shard(s) of '
                              f'split {split!r} but {missing[0]} is missing: prepare it again')
  image_key, label_key = _supervised_keys(info, version_dir)
  features = _read_json(version_dir, 'features.json')['featuresDict']['features']
  dimensions = features[image_key]['image']['shape']['dimensions']
  return PreparedSplit(version, file_format, files, sum(lengths), image_key, label_key,
                       tuple(int(d) for d in dimensions))


def read_split(prepared: PreparedSplit) -> tuple[np.ndarray, np.ndarray]:
  """(images (N, *image_shape) uint8, labels (N,) int32) of every example, in file order."""
  height, width, channels = prepared.image_shape
  mode = {1: 'L', 3: 'RGB'}.get(channels)
  images = np.empty((prepared.num_examples, height * width * channels), np.uint8)
  labels = np.empty(prepared.num_examples, np.int32)
  count = 0
  for path in prepared.files:
    for record in _records(path, prepared.file_format):
      if count == prepared.num_examples:
        raise CorruptDatasetError(f'{path} holds more examples than dataset_info.json lists '
                                  f'({prepared.num_examples}): prepare it again')
      features = Example.FromString(record).features.feature
      # The encodings TFDS's Image feature writes; naming them skips Pillow's format sniffing,
      # about a quarter of the time an MNIST image takes.
      image = Image.open(io.BytesIO(features[prepared.image_key].bytes_list.value[0]),
                         formats=('PNG', 'JPEG'))
      if image.size != (width, height) or image.mode != mode:
        raise CorruptDatasetError(f'{path}: example {count} is a {image.mode} image of '
                                  f'{image.size[0]}x{image.size[1]} where features.json '
                                  f'declares {prepared.image_shape}')
      images[count] = np.frombuffer(image.tobytes(), np.uint8)
      labels[count] = features[prepared.label_key].int64_list.value[0]
      count += 1
  if count != prepared.num_examples:
    raise CorruptDatasetError(f'{prepared.files[-1]}: the split has {count} examples where '
                              f'dataset_info.json lists {prepared.num_examples}: prepare it again')
  return images.reshape(prepared.num_examples, *prepared.image_shape), labels


def _is_version(name: str) -> bool:
  parts = name.split('.')
  return len(parts) == 3 and all(p.isdigit() for p in parts)


def _read_json(version_dir: str, filename: str) -> dict:
  with open(os.path.join(version_dir, filename)) as f:
    return json.load(f)


def _shard_name(template: str, name: str, split: str, file_format: str, index: int,
                num_shards: int) -> str:
  """TFDS's shard naming (tfds.core.naming): numbers zero-padded to at least 5 digits."""
  digits = max(len(str(num_shards)), 5)
  shard, total = f'{index:0{digits}d}', f'{num_shards:0{digits}d}'
  return template.format(DATASET=name, SPLIT=split, FILEFORMAT=file_format, SHARD_INDEX=shard,
                         NUM_SHARDS=total, SHARD_X_OF_Y=f'{shard}-of-{total}')


def _supervised_keys(info: dict, version_dir: str) -> tuple[str, str]:
  """(image feature, label feature); dataset_info.json spelt this two ways over TFDS versions."""
  keys = info.get('supervisedKeys', {})
  if 'tuple' in keys:
    return tuple(item['featureKey'] for item in keys['tuple']['items'])
  if 'input' in keys:
    return keys['input'], keys['output']
  raise CorruptDatasetError(f'{version_dir}/dataset_info.json names no supervised (image, label) '
                            'keys: not an image-classification dataset')


def _records(path: str, file_format: str) -> Iterator[bytes]:
  if file_format == 'tfrecord':
    return _tfrecord_records(path)
  if file_format == 'array_record':
    return _array_record_records(path)
  raise CorruptDatasetError(f'{path}: file format {file_format!r} is not supported '
                            '(tfrecord or array_record)')


def _tfrecord_records(path: str) -> Iterator[bytes]:
  """tfrecord framing: length (uint64 LE), masked crc32c of the length, data, masked crc32c
  of the data. Both checksums are checked: a damaged label would otherwise pass unnoticed."""
  with open(path, 'rb') as f:
    data = f.read()
  offset = 0
  while offset < len(data):
    start = offset + 12
    header = data[offset:offset + 8]
    length_ok = (start <= len(data)
                 and _masked_crc(header) == struct.unpack_from('<I', data, offset + 8)[0])
    end = start + struct.unpack('<Q', header)[0] if length_ok else len(data)
    if end + 4 > len(data):
      raise CorruptDatasetError(f'{path} is damaged or truncated at byte {offset}: '
                                'prepare it again')
    record = data[start:end]
    if _masked_crc(record) != struct.unpack_from('<I', data, end)[0]:
      raise CorruptDatasetError(f'{path}: the record at byte {offset} fails its checksum: '
                                'prepare it again')
    yield record
    offset = end + 4


def _masked_crc(data: bytes) -> int:
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + 0xa282ead8) & 0xffffffff


def _array_record_records(path: str) -> Iterator[bytes]:
  # Imported here: only this format needs it, and it has no wheel for some platforms.
  try:
    from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise CorruptDatasetError(f'{path} is array_record, which needs the array_record package '
                              f'({error}): pip install array_record') from error
  reader = array_record_module.ArrayRecordReader(path)
  try:
    yield from reader.read_all()
  finally:
    reader.close()


def _example_class():
  """tf.train.Example (tensorflow/core/example/{example,feature}.proto), declared here:
  TensorBoard's copies of TensorFlow's protos leave it out and TFDS's copy needs TFDS. A
  private pool cannot clash with TensorFlow's own when both are loaded (as when TFDS
  prepares a dataset)."""
  field = descriptor_pb2.FieldDescriptorProto
  proto = descriptor_pb2.FileDescriptorProto(name='cnn_jax/tf_example.proto',
                                             package='tensorflow', syntax='proto3')
  feature = proto.message_type.add(name='Feature')
  feature.oneof_decl.add(name='kind')
  for number, (name, message, value_type) in enumerate((
      ('bytes_list', 'BytesList', field.TYPE_BYTES),
      ('float_list', 'FloatList', field.TYPE_FLOAT),
      ('int64_list', 'Int64List', field.TYPE_INT64)), start=1):
    proto.message_type.add(name=message).field.add(name='value', number=1, type=value_type,
                                                   label=field.LABEL_REPEATED)
    feature.field.add(name=name, number=number, type=field.TYPE_MESSAGE, oneof_index=0,
                      label=field.LABEL_OPTIONAL, type_name=f'.tensorflow.{message}')
  features = proto.message_type.add(name='Features')
  entry = features.nested_type.add(name='FeatureEntry')  # map<string, Feature> feature = 1
  entry.options.map_entry = True
  entry.field.add(name='key', number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
  entry.field.add(name='value', number=2, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                  type_name='.tensorflow.Feature')
  features.field.add(name='feature', number=1, type=field.TYPE_MESSAGE,
                     label=field.LABEL_REPEATED, type_name='.tensorflow.Features.FeatureEntry')
  proto.message_type.add(name='Example').field.add(
      name='features', number=1, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
      type_name='.tensorflow.Features')
  pool = descriptor_pool.DescriptorPool()
  pool.Add(proto)
  return message_factory.GetMessageClass(pool.FindMessageTypeByName('tensorflow.Example'))


Example = _example_class()
