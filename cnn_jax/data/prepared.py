"""Reads one split of a dataset that TFDS prepared on disk, without TensorFlow or TFDS.

tfds.load needs TensorFlow (seconds to import, about 15 s to read MNIST on 2 CPU cores, and
absent from the GPU machine), and tensorflow_datasets cannot even be imported without it.
What TFDS leaves on disk is simple to read directly: <data_dir>/<name>/<version>/ holds
dataset_info.json (file format, each split's shard file names and lengths, which features
are input and label), features.json (the image shape and dtype, the class count), and shard
files of serialized tf.train.Example protos, one per example, as tfrecord or array_record.
`read_info` reads the two JSON files alone, what validating a config needs; Pillow decodes
the encoded images of a split. Examples come back in file order, as tfds.load gives them
without shuffling. How a shard file frames its records, and the Example proto that parses
each, are records.py's.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os

import numpy as np
from PIL import Image

from cnn_jax.data import records
from cnn_jax.errors import CorruptDatasetError
from cnn_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class PreparedInfo:
  """What dataset_info.json and features.json say of an (image, label) dataset."""
  version_dir: str
  version: str
  file_format: str            # 'tfrecord' or 'array_record'
  image_key: str
  label_key: str
  image_shape: tuple[int, int, int]
  num_classes: int
  split_sizes: dict[str, int]  # every split prepared, by name


@dataclasses.dataclass(frozen=True)
class PreparedSplit:
  version: str
  file_format: str            # 'tfrecord' or 'array_record'
  files: tuple[str, ...]      # the shards, in order
  num_examples: int
  image_key: str
  label_key: str
  image_shape: tuple[int, ...]


class NotImageClassification(UserError, ValueError):
  """The prepared dataset is not one of (fixed-shape uint8 image, class label) examples;
  the message says what it has instead (datasets.read_info adds the field, data.name)."""


# Shard names and format when dataset_info.json has no filepathTemplate or fileFormat, as
# TFDS wrote it before it had other formats and templates.
_DEFAULT_TEMPLATE = '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}'
# Pillow's modes for the channel counts TFDS's Image feature encodes as PNG or JPEG.
IMAGE_MODES = {1: 'L', 3: 'RGB'}


def newest_version_dir(name: str, data_dir: str) -> str | None:
  """<data_dir>/<name>/<newest version>, or None when no version is prepared there. TFDS
  prepares into '<version>.incomplete<id>' and renames when done, so a version dir with
  dataset_info.json is complete."""
  root = os.path.join(data_dir, name)
  versions = [v for v in (os.listdir(root) if os.path.isdir(root) else [])
              if _is_version(v) and os.path.isfile(os.path.join(root, v, 'dataset_info.json'))]
  if not versions:
    return None
  return os.path.join(root, max(versions, key=lambda v: tuple(int(p) for p in v.split('.'))))


def prepared_names(data_dir: str) -> list[str]:
  """The datasets prepared in data_dir ('name', or 'name/config' for a builder config)."""
  found = []
  for name in sorted(os.listdir(data_dir) if os.path.isdir(data_dir) else []):
    if newest_version_dir(name, data_dir):
      found.append(name)
    elif os.path.isdir(os.path.join(data_dir, name)):
      found += [f'{name}/{c}' for c in sorted(os.listdir(os.path.join(data_dir, name)))
                if newest_version_dir(f'{name}/{c}', data_dir)]
  return found


def read_info(name: str, data_dir: str) -> PreparedInfo | None:
  """The newest prepared version's description, from its two JSON files alone (no shard is
  opened); None when none is prepared. NotImageClassification when its supervised keys are
  not a fixed-shape uint8 image and a ClassLabel."""
  found = newest_version_dir(name, data_dir)
  if found is None:
    return None
  info = _read_json(found, 'dataset_info.json')
  image_key, label_key = _supervised_keys(info)
  features = _read_json(found, 'features.json').get('featuresDict', {}).get('features', {})
  return PreparedInfo(
      version_dir=found, version=os.path.basename(found),
      file_format=info.get('fileFormat', 'tfrecord'), image_key=image_key, label_key=label_key,
      image_shape=_image_shape(features, image_key),
      num_classes=_num_classes(features, label_key),
      split_sizes={s['name']: sum(int(n) for n in s.get('shardLengths', []))
                   for s in info.get('splits', [])})


def find_split(name: str, split: str, data_dir: str) -> PreparedSplit | None:
  """The split of the newest version of `name` prepared in data_dir; None if there is none."""
  found = read_info(name, data_dir)
  if found is None:
    return None
  info = _read_json(found.version_dir, 'dataset_info.json')
  entry = next((s for s in info.get('splits', []) if s['name'] == split), None)
  if entry is None:
    return None
  template = entry.get('filepathTemplate', _DEFAULT_TEMPLATE)
  lengths = [int(n) for n in entry['shardLengths']]
  # TFDS names shards after the builder, without a builder config's '/<config>'.
  builder = info.get('name', name.split('/')[0])
  files = tuple(os.path.join(found.version_dir,
                             _shard_name(template, builder, split, found.file_format, i,
                                         len(lengths)))
                for i in range(len(lengths)))
  missing = [f for f in files if not os.path.isfile(f)]
  if missing:
    raise CorruptDatasetError(f'{found.version_dir}/dataset_info.json lists {len(files)} '
                              f'shard(s) of split {split!r} but {missing[0]} is missing: '
                              'prepare it again')
  return PreparedSplit(found.version, found.file_format, files, sum(lengths), found.image_key,
                       found.label_key, found.image_shape)


def read_split(prepared: PreparedSplit) -> tuple[np.ndarray, np.ndarray]:
  """(images (N, *image_shape) uint8, labels (N,) int32) of every example, in file order."""
  height, width, channels = prepared.image_shape
  mode = IMAGE_MODES[channels]
  images = np.empty((prepared.num_examples, height * width * channels), np.uint8)
  labels = np.empty(prepared.num_examples, np.int32)
  count = 0
  for path in prepared.files:
    for record in records.read(path, prepared.file_format):
      if count == prepared.num_examples:
        raise CorruptDatasetError(f'{path} holds more examples than dataset_info.json lists '
                                  f'({prepared.num_examples}): prepare it again')
      features = records.Example.FromString(record).features.feature
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
  path = os.path.join(version_dir, filename)
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as error:
    raise CorruptDatasetError(f'{path} cannot be read ({type(error).__name__}: {error}): '
                              'prepare the dataset again') from error


def _shard_name(template: str, name: str, split: str, file_format: str, index: int,
                num_shards: int) -> str:
  """TFDS's shard naming (tfds.core.naming): numbers zero-padded to at least 5 digits."""
  digits = max(len(str(num_shards)), 5)
  shard, total = f'{index:0{digits}d}', f'{num_shards:0{digits}d}'
  return template.format(DATASET=name, SPLIT=split, FILEFORMAT=file_format, SHARD_INDEX=shard,
                         NUM_SHARDS=total, SHARD_X_OF_Y=f'{shard}-of-{total}')


def _supervised_keys(info: dict) -> tuple[str, str]:
  """(image feature, label feature); dataset_info.json spelt this two ways over TFDS versions."""
  keys = info.get('supervisedKeys', {})
  if 'tuple' in keys and len(keys['tuple'].get('items', [])) == 2:
    return tuple(item['featureKey'] for item in keys['tuple']['items'])
  if 'input' in keys and 'output' in keys:
    return keys['input'], keys['output']
  raise NotImageClassification('dataset_info.json names no supervised (input, label) pair of '
                               f'features (supervisedKeys: {json.dumps(keys) if keys else "none"})')


def _image_shape(features: dict, key: str) -> tuple[int, int, int]:
  feature = features.get(key, {})
  if 'image' not in feature:
    kind = feature.get('pythonClassName', 'absent').rsplit('.', 1)[-1]
    raise NotImageClassification(f'its input feature {key!r} is not an Image ({kind})')
  image = feature['image']
  # TFDS writes -1 for a dimension that varies from image to image.
  shape = tuple(int(d) for d in image.get('shape', {}).get('dimensions', []))
  shown = '(' + ', '.join('None' if d < 0 else str(d) for d in shape) + ')'
  if image.get('dtype', 'uint8') != 'uint8':
    raise NotImageClassification(f'its images {key!r} are {image["dtype"]}, not uint8')
  if len(shape) != 3 or any(d <= 0 for d in shape):
    raise NotImageClassification(f'its images {key!r} have shape {shown}, where this code '
                                 'needs one fixed (height, width, channels) for every image')
  if shape[2] not in IMAGE_MODES:
    raise NotImageClassification(f'its images {key!r} have {shape[2]} channels, where this '
                                 f'code reads {" or ".join(map(str, IMAGE_MODES))}')
  return shape


def _num_classes(features: dict, key: str) -> int:
  feature = features.get(key, {})
  if 'classLabel' not in feature:
    kind = feature.get('pythonClassName', 'absent').rsplit('.', 1)[-1]
    raise NotImageClassification(f'its label feature {key!r} is not a ClassLabel ({kind})')
  return int(feature['classLabel']['numClasses'])
