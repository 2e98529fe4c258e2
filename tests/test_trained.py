"""A trained run used from Python (cnn_jax.trained) and from the command line
(python -m cnn_jax.evaluate), on tiny runs of the mock data, each trained once per module."""
import json
import os
import shutil
import subprocess
import sys

import flax.serialization
import jax
import numpy as np
import pytest

from cnn_jax import errors
from cnn_jax import train
from cnn_jax import trained
from cnn_jax.config import validation
from cnn_jax.data import datasets
from cnn_jax.engine import checkpoint
from cnn_jax.engine import metrics
from cnn_jax.engine import results
from cnn_jax.model import shapes
from cnn_jax.machine import patience
from experiments import default
from tests import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train_once(tmp_path_factory, mock_mnist_files, name, **overrides):
  """A tiny run trained into a directory of this module, on the mock data (TFDS_DATA_DIR set
  only while it trains, so the function-scoped mock_mnist fixture is undisturbed)."""
  config = conftest.tiny()
  for path, value in overrides.items():
    section, field = path.split('.')
    config[section][field] = value
  workdir = str(tmp_path_factory.mktemp(name))
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('TFDS_DATA_DIR', mock_mnist_files[0])
    datasets.load_tfds_split.cache_clear()
    train.train_and_evaluate(config, workdir)
    datasets.load_tfds_split.cache_clear()
  return workdir


@pytest.fixture(scope='module')
def xla_run(tmp_path_factory, mock_mnist_files):
  """Trained with XLA's layers, the ones predict runs: predictions and the run's own
  evaluation cannot round a near-tie apart. No validation split."""
  return _train_once(tmp_path_factory, mock_mnist_files, 'xla_run',
                     **{'model.conv_impl': 'xla', 'model.pool_impl': 'xla'})


@pytest.fixture(scope='module')
def shifted_run(tmp_path_factory, mock_mnist_files):
  """Trained with shifted-slice convolutions and reshape pooling (recorded in results.json),
  and with a validation split."""
  return _train_once(tmp_path_factory, mock_mnist_files, 'shifted_run',
                     **{'model.conv_impl': 'shifted', 'model.pool_impl': 'reshape',
                        'data.validation': 'train_random', 'data.num_validation': 56})


def test_load_reads_config_results_and_the_checkpoint_s_parameters_bit_for_bit(xla_run,
                                                                               mock_mnist):
  run = trained.load(xla_run)
  with open(checkpoint.path_in(xla_run), 'rb') as f:
    saved = flax.serialization.msgpack_restore(f.read())['state']
  jax.tree_util.tree_map(np.testing.assert_array_equal, run.params, saved['params'])
  assert jax.tree_util.tree_structure(run.params) == jax.tree_util.tree_structure(
      saved['params'])
  assert run.step == int(saved['step']) == run.results['steps'] == 12
  assert run.results == results.read(xla_run) and run.results['status'] == 'ok'
  assert json.loads(run.config.to_json()) == run.results['config']
  assert run.config.model.conv_features == (4, 8)  # tuples again, as the config was written
  validation.validate(run.config)
  assert run.image_shape == (28, 28, 1) and run.num_classes == 10


def test_predict_takes_uint8_or_float_images_one_or_many(xla_run, mock_mnist):
  run = trained.load(xla_run)
  images = mock_mnist['test'].images
  probabilities = run.predict(images)
  assert probabilities.shape == (256, 10)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  assert (probabilities >= 0).all()
  # uint8 is scaled by 1/255 on the device (step.to_float), floats arrive scaled.
  for dtype in (np.float32, np.float64):
    np.testing.assert_allclose(run.predict(images.astype(dtype) / 255), probabilities,
                               rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(run.predict(images[..., 0]), probabilities)
  one = run.predict(images[3])
  assert one.shape == (10,)
  np.testing.assert_allclose(one, probabilities[3], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(run.predict(images[3, :, :, 0]), one)
  logits = run.logits(images)
  np.testing.assert_allclose(jax.nn.softmax(logits), probabilities, rtol=1e-5, atol=1e-7)
  assert run.predict(images[:0]).shape == (0, 10)


def test_predictions_give_the_run_s_final_test_figures(xla_run, mock_mnist):
  run = trained.load(xla_run)
  test = mock_mnist['test']
  predicted = run.predict(test.images).argmax(axis=1)
  final = run.results['final']['test']
  assert np.mean(predicted != test.labels) == final['error']
  confusion = np.zeros((10, 10), int)
  np.add.at(confusion, (test.labels, predicted), 1)
  assert confusion.tolist() == final['confusion']


@pytest.mark.parametrize('images, message', [
    (np.zeros((28, 28, 3), np.uint8),
     r'images of shape \(28, 28, 3\) do not fit .* allowed shapes: \(28, 28, 1\) or \(28, 28\) '
     r'for one image, \(N, 28, 28, 1\) or \(N, 28, 28\) for a batch'),
    (np.zeros((2, 1, 28, 28, 1), np.uint8), r'images of shape \(2, 1, 28, 28, 1\) do not fit'),
    (np.zeros((2, 28, 28, 1), np.int64), r'dtype int64 are not allowed; allowed: uint8'),
    (np.zeros((28, 28), bool), r'dtype bool are not allowed'),
    (np.zeros((28, 28), np.complex64), r'dtype complex64 are not allowed'),
    (np.full((2, 28, 28), 255.0, np.float32),
     r'float images must hold values in \[0, 1\] .* these hold values from 255.0 to 255.0'),
    (np.full((28, 28), -0.5), r'in \[0, 1\] .* these hold values from -0.5 to -0.5'),
    (np.where(np.eye(28) > 0, np.nan, 0.5), r'in \[0, 1\] .* these hold NaN'),
])
def test_bad_images_are_refused_naming_what_was_given(xla_run, images, message):
  run = trained.load(xla_run)
  for method in (run.predict, run.logits, run.intermediates):
    with pytest.raises(errors.InputError, match=message):
      method(images)


def test_intermediates_are_the_outputs_of_the_model_s_layers(xla_run, mock_mnist):
  run = trained.load(xla_run)
  images = mock_mnist['test'].images[:5]
  maps = run.intermediates(images)
  layers = shapes.infer_layer_shapes(run.config.model, run.image_shape)
  assert list(maps) == [layer.name for layer in layers] == [
      'conv0', 'pool0', 'conv1', 'pool1', 'flatten', 'logits']
  for layer in layers:
    assert maps[layer.name].shape == (5, *layer.output_shape), layer.name
  assert (maps['conv0'] >= 0).all() and (maps['conv0'] > 0).any()  # after the ReLU
  np.testing.assert_array_equal(maps['pool1'].reshape(5, -1), maps['flatten'])
  np.testing.assert_allclose(maps['logits'], run.logits(images), rtol=1e-5, atol=1e-6)
  one = run.intermediates(images[2])
  assert list(one) == list(maps)
  for name, value in one.items():
    np.testing.assert_allclose(value, maps[name][2], rtol=1e-5, atol=1e-6)


def test_from_params_needs_no_run_directory(xla_run, mock_mnist):
  loaded = trained.load(xla_run)
  in_memory = trained.TrainedRun.from_params(loaded.config, loaded.params)
  assert in_memory.image_shape == (28, 28, 1) and in_memory.workdir is None
  images = mock_mnist['test'].images[:7]
  np.testing.assert_array_equal(in_memory.predict(images), loaded.predict(images))


def test_evaluate_gives_results_json_s_final_figures_exactly(shifted_run, mock_mnist):
  run = trained.load(shifted_run)
  assert run.layer_impls.describe() == {'conv0': 'shifted', 'conv1': 'shifted',
                                        'pool0': 'reshape', 'pool1': 'reshape'}
  splits = datasets.load_splits(run.config.data).eval_splits()
  assert set(splits) == {'validation', 'test'}
  for name, split in splits.items():
    # The loss to the last bit: XLA's layers would round it differently (checked by hand).
    assert run.evaluate(split) == run.results['final'][name], name


def test_load_refuses_what_is_not_a_trained_run(tmp_path, xla_run):
  with pytest.raises(errors.RunDirectoryError, match=r'nowhere is not a directory'):
    trained.load(str(tmp_path / 'nowhere'))
  with pytest.raises(errors.RunDirectoryError, match=r'holds no config.json, so it is not a run'):
    trained.load(str(tmp_path))
  for name in ('config.json', datasets.RECORD_FILENAME):  # what a run writes as it starts
    shutil.copy(os.path.join(xla_run, name), tmp_path)
  with pytest.raises(errors.RunDirectoryError,
                     match=r'holds no checkpoint.msgpack: the run has not finished an epoch'):
    trained.load(str(tmp_path))
  config = json.loads((tmp_path / 'config.json').read_text())
  config['train']['checkpoint_every_epochs'] = 0
  (tmp_path / 'config.json').write_text(json.dumps(config))
  with pytest.raises(errors.RunDirectoryError,
                     match=r'it ran with train.checkpoint_every_epochs=0, which keeps no'):
    trained.load(str(tmp_path))
  config['model']['activation'] = 'swish'
  (tmp_path / 'config.json').write_text(json.dumps(config))
  with pytest.raises(errors.ConfigError, match=r"config.json does not hold a config this code "
                     r"can use \(ConfigError: model.activation='swish' is not supported"):
    trained.load(str(tmp_path))


def evaluate_command(args, data_dir, **env):
  env = dict(os.environ, TFDS_DATA_DIR=data_dir, **env)
  return subprocess.run([sys.executable, '-m', 'cnn_jax.evaluate', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=patience(300), env=env)


def test_the_evaluate_command_prints_the_run_s_test_error(shifted_run, mock_mnist_files):
  # Under forced CPU devices too: the command sizes XLA's thread pools before JAX starts, as
  # every entry point does (startup.py), or JAX's start refuses to run.
  proc = evaluate_command([f'--workdir={shifted_run}'], mock_mnist_files[0],
                          XLA_FLAGS='--xla_force_host_platform_device_count=4')
  assert proc.returncode == 0, proc.stderr[-3000:]
  final = results.read(shifted_run)['final']['test']
  test_line = next(line for line in proc.stdout.splitlines() if line.startswith('test: '))
  assert f'error {metrics.show("error", final["error"])}' in test_line
  assert f'loss {metrics.show("loss", final["loss"])}' in test_line
  assert 'the same as this evaluation' in proc.stdout
  assert metrics.confusion_markdown(final['confusion']) in proc.stdout
  assert 'layers conv0=shifted, conv1=shifted, pool0=reshape, pool1=reshape' in proc.stdout


def test_the_evaluate_command_refuses_a_split_the_run_lacks(xla_run, mock_mnist_files):
  proc = evaluate_command([f'--workdir={xla_run}', '--split=validation'], mock_mnist_files[0])
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert lines == ["error: --split='validation' is not a split of this run "
                   "(data.validation='none'); allowed values: test"], proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr and proc.stdout == ''


@pytest.mark.realdata
def test_a_short_real_run_evaluates_and_predicts_as_it_recorded(tmp_path):
  """T2 for 100 steps on the real MNIST: evaluate repeats results.json's test figures, and
  predict (XLA's layers, whatever the run chose) classifies the 10,000 test images alike."""
  data_dir = conftest.real_data_or_skip()
  config = default.get_config()
  config.data.data_dir = data_dir
  config.train.num_train_steps = 100
  train.train_and_evaluate(config, str(tmp_path))
  run = trained.load(str(tmp_path))
  test = datasets.load_splits(run.config.data).test
  final = run.results['final']['test']
  assert run.evaluate(test) == final
  predicted_error = np.mean(run.predict(test.images).argmax(axis=1) != test.labels)
  assert abs(predicted_error - final['error']) <= 3 / 10_000  # near-ties only
  assert final['error'] < 0.2
