"""Any prepared image-classification dataset, not only MNIST's: what validation reads of it
(dataset_info.json and features.json, no image), the one line when it is missing or is not
(image, label), and a colour and a small non-square dataset through a run, a vmapped group,
evaluation (Python and the command), the report and every picture."""
import json
import os
import pathlib
import struct
import subprocess
import sys
import types

import numpy as np
import pytest

from cnn_jax import errors
from cnn_jax import train
from cnn_jax import trained
from cnn_jax.config import memory
from cnn_jax.config import validation
from cnn_jax.data import datasets
from cnn_jax.engine import results
from cnn_jax.pictures import run_pictures
from cnn_jax.reports import run_report
from cnn_jax.machine import patience
from experiments import default
from tests import prepared_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name: (image shape, classes): a CIFAR-10-like colour set, and a tiny non-square one.
DATASETS = {'cifar_like': ((32, 32, 3), 10), 'tiny_rect': ((12, 20, 1), 3)}
SIZES = {'train': 96, 'test': 40}
END_PICTURES = {'learning_curves', 'confusion_test', 'predictions', 'confidently_wrong',
                'filters', 'activations'}


def config_for(name: str, data_dir: str = '', **train_fields):
  """One conv layer of 4, no hidden layer: a few steps take well under a second."""
  config = default.get_config()
  shape, classes = DATASETS[name]
  config.data.name, config.data.data_dir = name, data_dir
  config.model.update(dict(
      conv_features=(4,), conv_kernel_size=(3,), conv_strides=(1,), conv_padding=('SAME',),
      pool_type=('max',), pool_window=(2,), pool_strides=(2,), pool_padding=('VALID',),
      hidden_dims=(), num_classes=classes, conv_impl='xla', pool_impl='xla'))
  config.train.update({'batch_size': 16, 'num_epochs': 1.0, 'log_every_steps': 3,
                       'eval_batch_size': 32, 'pictures': 'none', **train_fields})
  return config


def one_line_error(kind, call):
  with pytest.raises(kind) as caught:
    call()
  message = str(caught.value)
  assert '\n' not in message, message
  return message


# ---- what validation reads ----

def test_info_comes_from_the_prepared_json_alone(tmp_path):
  # Described only: no shard exists, so nothing but the two JSON files can have been read.
  prepared_data.write_description(tmp_path / 'cifar100_like' / '1.0.0', 'cifar100_like',
                                  {'train': [25_000, 25_000], 'test': [10_000]},
                                  image_shape=(32, 32, 3), num_classes=100)
  config = default.get_config()
  config.data.update(dict(name='cifar100_like', data_dir=str(tmp_path),
                          validation='test_stratified', num_validation=5000))
  config.model.num_classes = 100
  found = datasets.info(config.data)
  assert found == datasets.DatasetInfo((32, 32, 3), 100, {'train': 50_000, 'test': 10_000})
  assert validation.validate_data(config.data) == found
  validation.validate(config)
  params, _ = memory.memory_needed(config)
  assert params == (5 * 5 * 3 * 8 + 8) + (5 * 5 * 8 * 16 + 16) + (5 * 5 * 16 * 100 + 100)
  config.model.num_classes = 10
  assert one_line_error(errors.ConfigError, lambda: validation.validate(config)) == (
      'model.num_classes=10 but the dataset has 100 classes')
  config.data.num_validation = 10_000
  assert 'must lie between 1 and 9999 (the test split of cifar100_like has 10000 images)' in (
      one_line_error(errors.ConfigError, lambda: validation.validate(config)))


def test_a_builder_config_is_read_from_its_own_directory(tmp_path):
  written = prepared_data.write_prepared(tmp_path, {'train': 6, 'test': 4}, name='odd/fog_1',
                                         image_shape=(8, 6, 3), num_classes=4)
  config = default.get_config().data
  config.update(dict(name='odd/fog_1', data_dir=str(tmp_path)))
  assert validation.validate_data(config) == datasets.DatasetInfo((8, 6, 3), 4,
                                                                  {'train': 6, 'test': 4})
  splits = datasets.load_splits(config)
  np.testing.assert_array_equal(splits.test.images, written['test'].images)
  assert splits.num_classes == 4 and splits.image_shape == (8, 6, 3)


def test_a_dataset_not_prepared_is_one_line_naming_the_directory(tmp_path):
  prepared_data.write_description(tmp_path / 'mnist' / '3.0.1', 'mnist', {'train': [1]})
  config = default.get_config().data
  config.update(dict(name='cifar10', data_dir=str(tmp_path)))
  message = one_line_error(errors.DatasetNotFoundError, lambda: validation.validate_data(config))
  assert message.startswith(f"data.name='cifar10' is not prepared in {tmp_path} (no "
                            'cifar10/<version>/dataset_info.json there; prepared there: mnist)')
  assert '--config.data.data_dir=DIR' in message and 'TFDS_DATA_DIR' in message
  assert 'data.download=True' in message


BAD_FEATURES = [
    ('label', {'tensor': {'dtype': 'float32'}, 'pythonClassName': 'x.Tensor'},
     "its label feature 'label' is not a ClassLabel (Tensor)"),
    ('image', {'tensor': {'shape': {'dimensions': ['3']}}, 'pythonClassName': 'x.Tensor'},
     "its input feature 'image' is not an Image (Tensor)"),
    ('image', {'image': {'dtype': 'uint16', 'shape': {'dimensions': ['8', '8', '1']}}},
     "its images 'image' are uint16, not uint8"),
    ('image', {'image': {'dtype': 'uint8', 'shape': {'dimensions': ['-1', '-1', '3']}}},
     "its images 'image' have shape (None, None, 3), where this code needs one fixed "
     '(height, width, channels) for every image'),
    ('image', {'image': {'dtype': 'uint8', 'shape': {'dimensions': ['8', '8', '4']}}},
     "its images 'image' have 4 channels, where this code reads 1 or 3"),
]


@pytest.mark.parametrize('feature, value, message', BAD_FEATURES)
def test_a_dataset_that_is_not_image_and_label_is_one_line(tmp_path, feature, value, message):
  version_dir = tmp_path / 'odd' / '1.0.0'
  prepared_data.write_description(version_dir, 'odd', {'train': [8], 'test': [8]})
  features_path = version_dir / 'features.json'
  features = json.loads(features_path.read_text())
  features['featuresDict']['features'][feature] = value
  features_path.write_text(json.dumps(features))
  config = default.get_config().data
  config.update(dict(name='odd', data_dir=str(tmp_path)))
  assert one_line_error(errors.ConfigError, lambda: validation.validate_data(config)) == (
      f"data.name='odd': {version_dir} is not an image-classification dataset: {message}")


def test_no_supervised_keys_or_no_test_split_is_one_line(tmp_path):
  version_dir = tmp_path / 'odd' / '1.0.0'
  prepared_data.write_description(version_dir, 'odd', {'train': [8], 'validation': [8]})
  config = default.get_config().data
  config.update(dict(name='odd', data_dir=str(tmp_path)))
  assert one_line_error(errors.ConfigError, lambda: validation.validate_data(config)) == (
      f"data.name='odd': {version_dir} has no test split (it has train, validation); this "
      "code trains on 'train' and tests on 'test'")
  info_path = version_dir / 'dataset_info.json'
  info = json.loads(info_path.read_text())
  del info['supervisedKeys']
  info_path.write_text(json.dumps(info))
  datasets.read_info.cache_clear()
  assert one_line_error(errors.ConfigError, lambda: validation.validate_data(config)).endswith(
      'not an image-classification dataset: dataset_info.json names no supervised (input, '
      'label) pair of features (supervisedKeys: none)')


def test_download_prepares_before_validation_reads_the_info(tmp_path, monkeypatch):
  calls = []
  class Builder:  # what tfds.builder(name, data_dir=...) gives, as far as this code uses it
    def __init__(self, name, data_dir):
      self.name, self.data_dir = name, data_dir
    def download_and_prepare(self):
      calls.append(self.name)
      prepared_data.write_prepared(pathlib.Path(self.data_dir), SIZES, name=self.name,
                                   image_shape=(12, 20, 1), num_classes=3)
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', types.SimpleNamespace(builder=Builder))
  monkeypatch.setitem(sys.modules, 'tensorflow', types.SimpleNamespace(config=types.SimpleNamespace(
      set_visible_devices=lambda devices, kind: None)))
  config = config_for('tiny_rect', str(tmp_path))
  config.data.download = True
  validation.validate(config)
  assert calls == ['tiny_rect']
  assert datasets.info(config.data).image_shape == (12, 20, 1)
  validation.validate(config)
  assert calls == ['tiny_rect']  # prepared once


def test_launch_with_a_dataset_that_is_not_image_and_label_exits_2(tmp_path):
  version_dir = tmp_path / 'tfds' / 'odd' / '1.0.0'
  prepared_data.write_description(version_dir, 'odd', {'train': [8], 'test': [8]})
  features = json.loads((version_dir / 'features.json').read_text())
  features['featuresDict']['features']['label'] = {'text': {}, 'pythonClassName': 'x.Text'}
  (version_dir / 'features.json').write_text(json.dumps(features))
  proc = subprocess.run(
      [sys.executable, 'launch.py', '--config=experiments/pool.py', f'--workdir={tmp_path / "run"}',
       '--config.data.name=odd', f'--config.data.data_dir={tmp_path / "tfds"}'],
      cwd=ROOT, capture_output=True, text=True, timeout=patience(300),
      env=dict(os.environ, CNN_JAX_NO_TCMALLOC='1'))
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: data.name='odd': {version_dir} is not an image-classification dataset: its "
      "label feature 'label' is not a ClassLabel (Text)")
  assert 'Traceback' not in proc.stderr


# ---- end to end, on each dataset ----

@pytest.fixture(scope='module', params=sorted(DATASETS))
def trained_runs(request, tmp_path_factory):
  """(name, data_dir, written splits, the single run's workdir, the group's workdirs): one run
  drawing every picture at its end, and a vmapped group of seeds 0 and 1, trained once, with
  $TFDS_DATA_DIR at the data only while they train (the configs name no data_dir)."""
  name = request.param
  shape, classes = DATASETS[name]
  root = tmp_path_factory.mktemp(f'tfds_{name}')
  written = prepared_data.write_prepared(root, SIZES, name=name, image_shape=shape,
                                         num_classes=classes)
  runs = tmp_path_factory.mktemp(f'runs_{name}')
  single = str(runs / 'single')
  group = [str(runs / f'seed{seed}') for seed in (0, 1)]
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('TFDS_DATA_DIR', str(root))
    record = train.train_and_evaluate(config_for(name, pictures='end'), single)
    assert record['status'] == 'ok', record['message']
    configs = [config_for(name) for _ in group]
    configs[1].seed = 1
    for record in train.train_group(configs, group):
      assert record['status'] == 'ok', record['message']
  return name, str(root), written, single, group


def png_size(path) -> tuple[int, int]:
  """(height, width) of a PNG file, from its signature and IHDR chunk."""
  data = pathlib.Path(path).read_bytes()
  assert data[:8] == b'\x89PNG\r\n\x1a\n', path
  width, height = struct.unpack('>II', data[16:24])
  return height, width


def test_a_run_records_its_dataset_and_draws_every_picture(trained_runs):
  name, _, _, single, _ = trained_runs
  shape, classes = DATASETS[name]
  saved = results.read(single)
  assert saved['num_examples'] == SIZES
  assert len(saved['final']['test']['confusion']) == classes
  assert datasets.read_record(single) == datasets.DatasetInfo(shape, classes, SIZES)
  directory = os.path.join(single, run_pictures.DIRECTORY)
  assert {p[:-len('.png')] for p in os.listdir(directory)} == END_PICTURES
  for picture in END_PICTURES:
    height, width = png_size(os.path.join(directory, f'{picture}.png'))
    assert 100 <= height <= 1500 and 300 <= width <= 1500, (picture, height, width)


def test_a_vmapped_group_trains_each_seed(trained_runs):
  name, _, _, _, group = trained_runs
  records = [results.read(workdir) for workdir in group]
  assert [r['executor']['members'] for r in records] == [2, 2]
  assert [r['config']['seed'] for r in records] == [0, 1]
  assert records[0]['history'][-1]['train'] != records[1]['history'][-1]['train']
  for workdir in group:
    assert datasets.read_record(workdir) == datasets.DatasetInfo(*DATASETS[name], SIZES)


def test_a_trained_run_predicts_and_evaluates_as_it_trained(trained_runs, monkeypatch):
  name, data_dir, written, _, group = trained_runs
  shape, classes = DATASETS[name]
  monkeypatch.setenv('TFDS_DATA_DIR', str(pathlib.Path(data_dir) / 'nothing here'))
  run = trained.load(group[1])  # its recorded dataset.json: no prepared data needed
  assert (run.image_shape, run.num_classes) == (shape, classes)
  test = written['test']
  assert run.predict(test.images).shape == (SIZES['test'], classes)
  assert run.predict(test.images[0]).shape == (classes,)
  maps = run.intermediates(test.images[:2])
  assert maps['conv0'].shape == (2, *shape[:2], 4)
  assert maps['pool0'].shape == (2, shape[0] // 2, shape[1] // 2, 4)
  with pytest.raises(errors.InputError, match=f'do not fit this run.s {shape[0]}x{shape[1]}x'):
    run.predict(np.zeros((28, 28, 1), np.uint8))
  assert run.evaluate(test) == run.results['final']['test']


def test_the_evaluate_command_and_the_report(trained_runs, monkeypatch):
  name, data_dir, _, single, _ = trained_runs
  shape, classes = DATASETS[name]
  proc = subprocess.run([sys.executable, '-m', 'cnn_jax.evaluate', f'--workdir={single}'],
                        cwd=ROOT, capture_output=True, text=True, timeout=patience(300),
                        env=dict(os.environ, TFDS_DATA_DIR=data_dir))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'the test split of {name} ({SIZES["test"]} images)' in proc.stdout
  assert 'the same as this evaluation' in proc.stdout

  for picture in END_PICTURES:  # the report draws them again, from the checkpoint
    os.remove(os.path.join(single, run_pictures.DIRECTORY, f'{picture}.png'))
  monkeypatch.setenv('TFDS_DATA_DIR', data_dir)
  path = run_report.write(single)
  with open(path) as f:
    text = f.read()
  assert 'Status: **ok**.' in text and 'Missing' not in text
  assert f'| conv0 | (None, {shape[0]}, {shape[1]}, 4) |' in text
  assert f'| logits | (None, {classes}) |' in text
  for picture in END_PICTURES:
    assert f'({run_pictures.DIRECTORY}/{picture}.png)' in text
    png_size(os.path.join(single, run_pictures.DIRECTORY, f'{picture}.png'))
