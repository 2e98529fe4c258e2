"""The records of a TFDS shard file, read without TensorFlow: tfrecord framing with both its
checksums checked, array_record through its own package, and tf.train.Example declared here
to parse each record.

prepared.py knows which files make a split and what their examples hold (dataset_info.json,
features.json); this module knows only how bytes are laid out in one file, so that a new
file format or a damaged shard is dealt with in one place.
"""
from __future__ import annotations

import struct
from typing import Iterator

import google_crc32c
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

from cnn_jax.errors import CorruptDatasetError


def read(path: str, file_format: str) -> Iterator[bytes]:
  """The records of one shard file, in file order."""
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
