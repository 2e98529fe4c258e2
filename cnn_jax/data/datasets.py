"""Any image-classification dataset TFDS prepared (MNIST, CIFAR-10, ...) as in-memory
arrays, with the validation splits the tutorials use.

`info` tells what a dataset is (image shape, class count, split sizes) from the prepared
dataset_info.json and features.json alone, so a config is validated before any image is read.
Each split is read from the files TFDS prepared (data/prepared.py, without TensorFlow) once
per process and kept as uint8 (MNIST is 47 MB), so the training loop indexes batches on the
device instead of running an input pipeline; the train step scales pixels to [0, 1].
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re

from absl import logging
import numpy as np

from cnn_jax import atomic_files
from cnn_jax import cache_dir
from cnn_jax.data import prepared
from cnn_jax.errors import ConfigError
from cnn_jax.errors import DatasetNotFoundError
from cnn_jax.errors import RunDirectoryError


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What validation needs to know of a dataset before reading it."""
  image_shape: tuple  # (height, width, channels)
  num_classes: int
  split_sizes: dict  # the prepared dataset's 'train' and 'test' sizes


# A TFDS dataset name, optionally with a builder config ('mnist', 'cifar10_corrupted/fog_1'):
# it becomes a path under the data directory, so nothing else gets through.
NAME_PATTERN = re.compile(r'[A-Za-z0-9_]+(/[A-Za-z0-9_][A-Za-z0-9_.+-]*)?')
SPLITS = ('train', 'test')
# Beside config.json in a run directory: the dataset's info as the run trained on it, so a
# trained run is used (its images' shape, its report) without the dataset prepared.
RECORD_FILENAME = 'dataset.json'

VALIDATION_MODES = {
    'none': 'no validation split',
    'train_head': 'the first N training images (T5)',
    'train_random': 'a seeded random N of the training images (T4)',
    'test_stratified': 'a seeded, label-stratified N of the test images; the rest stay test (T3)',
}


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # (N, H, W, C) uint8
  labels: np.ndarray  # (N,) int32

  def __len__(self) -> int:
    return len(self.labels)

  def subset(self, indices: np.ndarray) -> 'Split':
    return Split(self.images[indices], self.labels[indices])


@dataclasses.dataclass(frozen=True)
class Splits:
  train: Split
  validation: Split | None
  test: Split
  num_classes: int

  @property
  def image_shape(self) -> tuple:
    return tuple(self.train.images.shape[1:])

  def eval_splits(self) -> dict[str, Split]:
    """The splits evaluated every epoch, by the name used in metrics ('eval/<name>/...')."""
    splits = {'validation': self.validation} if self.validation is not None else {}
    splits['test'] = self.test
    return splits


def resolve_data_dir(configured: str) -> str:
  """config.data.data_dir, else $TFDS_DATA_DIR, else TFDS's default (~/tensorflow_datasets)."""
  if configured:
    return os.path.abspath(os.path.expanduser(configured))
  if os.environ.get('TFDS_DATA_DIR'):
    return os.path.abspath(os.path.expanduser(os.environ['TFDS_DATA_DIR']))
  return os.path.expanduser(os.path.join('~', 'tensorflow_datasets'))


_HOW_TO_PREPARE = (
    'Point --config.data.data_dir=DIR or the TFDS_DATA_DIR environment variable at the '
    "directory that holds {name}/ (here: TFDS_DATA_DIR=../shared/data/tfds), or, on a machine "
    "with internet, pip install -e '.[prepare]' and pass --config.data.download=True.")


def info(data_cfg) -> DatasetInfo:
  """The dataset data_cfg names, as its prepared dataset_info.json and features.json
  describe it (no image is read). With data.download, a dataset not prepared yet is first
  prepared by TFDS, so that validation sees what training will read."""
  data_dir = resolve_data_dir(data_cfg.data_dir)
  if data_cfg.download and prepared.newest_version_dir(data_cfg.name, data_dir) is None:
    prepare_with_tfds(data_cfg.name, data_dir)
  return read_info(data_cfg.name, data_dir)


@functools.lru_cache(maxsize=16)
def read_info(name: str, data_dir: str) -> DatasetInfo:
  """DatasetNotFoundError when `name` is not prepared in data_dir, ConfigError when it is not
  an (image, label) dataset with a train and a test split; each one line."""
  try:
    found = prepared.read_info(name, data_dir)
  except prepared.NotImageClassification as error:
    raise ConfigError(f'data.name={name!r}: {prepared.newest_version_dir(name, data_dir)} is '
                      f'not an image-classification dataset: {error}') from error
  if found is None:
    others = prepared.prepared_names(data_dir)
    raise DatasetNotFoundError(
        f'data.name={name!r} is not prepared in {data_dir} (no {name}/<version>/'
        f'dataset_info.json there; prepared there: {", ".join(others) or "none"}). '
        + _HOW_TO_PREPARE.format(name=name))
  missing = [s for s in SPLITS if s not in found.split_sizes]
  if missing:
    raise ConfigError(f'data.name={name!r}: {found.version_dir} has no {" or ".join(missing)} '
                      f'split (it has {", ".join(found.split_sizes) or "none"}); this code '
                      f'trains on {SPLITS[0]!r} and tests on {SPLITS[1]!r}')
  return DatasetInfo(found.image_shape, found.num_classes,
                     {s: found.split_sizes[s] for s in SPLITS})


def write_record(workdir: str, dataset: DatasetInfo) -> None:
  atomic_files.write_json(os.path.join(workdir, RECORD_FILENAME), dataclasses.asdict(dataset),
                          indent=2, sort_keys=True)


def read_record(workdir: str) -> DatasetInfo | None:
  """The dataset info a run directory recorded; None for a run from before it was recorded."""
  path = os.path.join(workdir, RECORD_FILENAME)
  if not os.path.exists(path):
    return None
  recorded = atomic_files.read_json(path)
  try:
    return DatasetInfo(tuple(recorded['image_shape']), int(recorded['num_classes']),
                       dict(recorded['split_sizes']))
  except (KeyError, TypeError, ValueError) as error:
    raise RunDirectoryError(f'{path} is damaged ({type(error).__name__}: {error}); remove it: '
                            "the run's dataset is then read from its prepared info") from None


# The decoded uint8 arrays of each prepared split are cached as .npz under
# $CNN_JAX_CACHE/datasets (default ~/.cache/cnn_jax), keyed by dataset, version, split and a
# checksum of the prepared files: a run after the first reads MNIST in a fraction of a second,
# where decoding its 70,000 PNG images takes seconds. CNN_JAX_DATA_CACHE=0 turns it off.
CACHE_SWITCH = 'CNN_JAX_DATA_CACHE'


def cache_path(name: str, split: str, version: str, files: tuple[str, ...]) -> str:
  digest = hashlib.sha256()
  for path in files:
    digest.update(os.path.basename(path).encode())
    with open(path, 'rb') as f:
      digest.update(f.read())
  return cache_dir.cache_dir('datasets', name, version, f'{split}-{digest.hexdigest()[:16]}.npz')


@functools.lru_cache(maxsize=4)
def load_tfds_split(name: str, split: str, data_dir: str, download: bool) -> Split:
  """Reads one whole split of a dataset TFDS prepared in data_dir into memory: from the cache
  when it holds the prepared files' arrays, else from the files (and then into the cache).
  With `download`, a dataset not prepared yet is first prepared by TFDS. A process reads each
  split once."""
  found = prepared.find_split(name, split, data_dir)
  if found is None and download:
    prepare_with_tfds(name, data_dir)
    found = prepared.find_split(name, split, data_dir)
  if found is None:
    raise DatasetNotFoundError(
        f'{name!r} (split {split!r}) is not prepared in {data_dir} (no {name}/<version>/'
        f'dataset_info.json listing it there). ' + _HOW_TO_PREPARE.format(name=name))
  path = (cache_path(name, split, found.version, found.files)
          if os.environ.get(CACHE_SWITCH, '1') != '0' else None)
  if path and os.path.exists(path):
    with np.load(path) as arrays:
      return Split(images=arrays['images'], labels=arrays['labels'])
  images, labels = prepared.read_split(found)
  if path:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
      atomic_files.write_npz(path, images=images, labels=labels)
    except atomic_files.DiskError as error:  # a cache: the run goes on without it
      logging.warning('%s', error)
  return Split(images=images, labels=labels)


def prepare_with_tfds(name: str, data_dir: str) -> None:
  """Downloads and prepares the dataset into data_dir with TFDS, the one step that needs
  TensorFlow (the `prepare` extra); reading it afterwards does not."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise DatasetNotFoundError(
        f'--config.data.download=True prepares {name!r} in {data_dir} with TFDS, which is not '
        f"installed here ({error}): pip install -e '.[prepare]' on a machine with internet, "
        f'or point --config.data.data_dir or TFDS_DATA_DIR at a prepared copy.') from error
  tf.config.set_visible_devices([], 'GPU')  # keep TensorFlow off the GPU JAX uses
  try:
    tfds.builder(name, data_dir=data_dir).download_and_prepare()
  except Exception as error:  # TFDS raises many types (network, checksum, I/O)
    raise DatasetNotFoundError(
        f'TFDS could not download and prepare {name!r} in {data_dir}: '
        f'{type(error).__name__}: {error}') from error


def load_splits(data_cfg) -> Splits:
  """Train / validation / test splits as the (validated) config describes them."""
  data_dir = resolve_data_dir(data_cfg.data_dir)
  train = load_tfds_split(data_cfg.name, 'train', data_dir, bool(data_cfg.download))
  test = load_tfds_split(data_cfg.name, 'test', data_dir, bool(data_cfg.download))
  train, validation, test = make_validation_split(
      train, test, data_cfg.validation, data_cfg.num_validation, data_cfg.split_seed)
  return Splits(train=train, validation=validation, test=test,
                num_classes=info(data_cfg).num_classes)


def make_validation_split(train: Split, test: Split, mode: str, size: int, seed: int):
  """Returns (train, validation or None, test) for one of VALIDATION_MODES."""
  if mode == 'none':
    return train, None, test
  source = test if mode == 'test_stratified' else train
  rng = np.random.default_rng(seed)
  if mode == 'train_head':
    chosen = np.arange(size)
  elif mode == 'train_random':
    chosen = np.sort(rng.permutation(len(source))[:size])
  else:
    chosen = stratified_indices(source.labels, size, rng)
  rest = np.setdiff1d(np.arange(len(source)), chosen)  # keeps the original order
  if mode == 'test_stratified':
    return train, test.subset(chosen), test.subset(rest)
  return train.subset(rest), train.subset(chosen), test


def stratified_indices(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  """`size` indices whose label proportions match `labels` (largest-remainder rounding)."""
  classes, counts = np.unique(labels, return_counts=True)
  exact = size * counts / counts.sum()
  per_class = np.floor(exact).astype(int)
  shortfall = size - per_class.sum()
  per_class[np.argsort(-(exact - per_class), kind='stable')[:shortfall]] += 1
  chosen = [rng.choice(np.flatnonzero(labels == c), n, replace=False)
            for c, n in zip(classes, per_class)]
  return np.sort(np.concatenate(chosen))

