"""launch.py as a user runs it: a subprocess with command-line overrides."""
import json
import os
import subprocess
import sys

import pytest

from cnn_jax.engine import results
from cnn_jax.machine import patience
from tests import prepared_data
from tests.conftest import real_data_or_skip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def mock_data(tmp_path_factory):
  """A prepared MNIST-like dataset of 96 random images per split, for runs through launch.py."""
  root = tmp_path_factory.mktemp('tfds')
  prepared_data.write_prepared(root, {'train': 96, 'test': 96})
  return str(root)


def run(args, data_dir=None, timeout=300):
  """launch.py with `args`, reading the dataset prepared in data_dir (if given), in the
  tests' environment (.ci/run's has no tcmalloc, as a fresh machine)."""
  env = dict(os.environ, **({'TFDS_DATA_DIR': data_dir} if data_dir else {}))
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=patience(timeout), env=env)


def test_launch_with_overrides(tmp_path, mock_data):
  proc = run(['--config=experiments/pool.py', f'--workdir={tmp_path}',
              '--config.model.activation=sigmoid', '--config.model.conv_features=(4,6)',
              '--config.train.num_train_steps=6', '--config.train.batch_size=16',
              '--config.train.log_every_steps=2'], mock_data)
  assert proc.returncode == 0, proc.stderr[-3000:]
  saved = results.read(str(tmp_path))
  assert saved['status'] == 'ok' and saved['steps'] == 6
  assert saved['config']['model']['activation'] == 'sigmoid'
  assert saved['config']['model']['conv_features'] == [4, 6]
  assert saved['params'] == (5 * 5 * 4 + 4) + (5 * 5 * 4 * 6 + 6) + (4 * 4 * 6 * 10 + 10)
  # The summary, the progress lines (96 images: step 6 ends the epoch) and the epoch line,
  # each once: under app.run absl's handler alone prints them.
  assert_shown_once(proc.stderr, ['total params', 'step 2/6 (epoch 0.33/1.00)',
                                  'step 4/6 (epoch 0.67/1.00)', 'epoch 1.00/1.00 (step 6)'])
  assert 'step 6/6' not in proc.stderr
  assert json.loads(proc.stdout.splitlines()[0])['status'] == 'ok'


def assert_shown_once(stderr, texts):
  counts = {text: sum(text in line for line in stderr.splitlines()) for text in texts}
  assert counts == dict.fromkeys(texts, 1), stderr[-3000:]


FROM_PYTHON = '''
import sys
from absl import logging
from cnn_jax import train
from experiments import default
config = default.get_config()
config.model.conv_features = (4, 6)
config.train.batch_size, config.train.num_epochs, config.train.log_every_steps = 16, 2.0, 2
before = logging.get_verbosity(), logging.get_absl_logger().level
train.train_and_evaluate(config, sys.argv[1])
print('absl restored:', (logging.get_verbosity(), logging.get_absl_logger().level) == before)
'''


def test_a_run_called_from_python_shows_its_progress_on_stderr(tmp_path, mock_data):
  """As from a notebook: no app.run, so absl's flags are never parsed."""
  proc = subprocess.run([sys.executable, '-c', FROM_PYTHON, str(tmp_path)], cwd=ROOT,
                        capture_output=True, text=True, timeout=patience(300),
                        env=dict(os.environ, TFDS_DATA_DIR=mock_data))
  assert proc.returncode == 0, proc.stderr[-3000:]
  # 96 images, 6 steps an epoch, 12 steps: progress at 2, 4, 8, 10; epochs end at 6 and 12.
  assert_shown_once(proc.stderr, [
      'total params', 'step 2/12 (epoch 0.33/2.00)', 'step 4/12 (epoch 0.67/2.00)',
      'epoch 1.00/2.00 (step 6)', 'step 8/12 (epoch 1.33/2.00)', 'step 10/12 (epoch 1.67/2.00)',
      'epoch 2.00/2.00 (step 12)', 'cntk_pool: status ok, test error'])
  assert proc.stdout.strip().splitlines()[-1] == 'absl restored: True'


@pytest.mark.parametrize('args, message', [
    (['--config.model.activaton=sigmoid'],
     "error: --config.model.activaton: 'activaton' is not a config field; Did you mean "
     '"activation" instead of "activaton"?'),
    (['--config.train.batch_size=many'],
     "error: flag --config.train.batch_size=many: invalid literal for int() with base 10: "
     "'many'"),
    (['--config=experiments/pool.py:sweep=search,trials=many'],  # get_config's own error
     "error: --config=experiments/pool.py:sweep=search,trials=many: config argument "
     "trials='many' is not understood; allowed values: an integer"),
])
def test_a_misspelt_or_mistyped_override_is_one_line_and_status_2(tmp_path, mock_data, args,
                                                                  message):
  proc = run(['--config=experiments/pool.py', f'--workdir={tmp_path}', *args], mock_data)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == message
  assert 'Traceback' not in proc.stderr
  assert not os.path.exists(tmp_path / 'results.json')


def test_a_missing_experiment_file_is_one_line_and_status_2(tmp_path):
  proc = run(['--config=experiments/nowhere.py:sweep=search', f'--workdir={tmp_path}'])
  assert proc.returncode == 2 and 'Traceback' not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      'error: --config=experiments/nowhere.py:sweep=search: no such experiment file')


def test_bad_value_fails_before_training_with_the_field_named(tmp_path, mock_data):
  proc = run(['--config=experiments/pool.py', f'--workdir={tmp_path}',
              '--config.model.pool_type=("max","median")'], mock_data)
  assert proc.returncode != 0
  assert "model.pool_type[1]='median' is not supported; allowed values: max, avg, none" in proc.stderr


@pytest.mark.realdata
def test_pool_one_epoch_on_real_mnist(tmp_path):
  """T2 for one pass over the real training set, through launch.py."""
  data_dir = real_data_or_skip()
  proc = run(['--config=experiments/pool.py', f'--workdir={tmp_path}',
              '--config.train.num_epochs=1'], data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  saved = results.read(str(tmp_path))
  assert saved['num_examples'] == {'train': 60_000, 'test': 10_000}
  assert saved['steps'] == 938
  assert saved['final']['test']['error'] < 0.03, saved['final']['test']
  assert sorted(os.listdir(tmp_path / 'pictures')) == [
      'activations.png', 'confidently_wrong.png', 'confusion_test.png', 'filters.png',
      'learning_curves.png', 'predictions.png']


def test_list_trials(mock_data):
  proc = run(['--config=experiments/pool.py:sweep=arch', '--list_trials'], mock_data)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 8 and lines[0].startswith('000-conv_features=8-16')


def test_one_sweep_trial_through_launch_with_an_override(tmp_path, mock_data):
  from tests.test_sweep import TOY_EXPERIMENT  # pylint: disable=g-import-not-at-top
  toy = tmp_path / 'toy.py'
  toy.write_text(TOY_EXPERIMENT)
  proc = run([f'--config={toy}', f'--workdir={tmp_path / "sweep"}', '--trial=1',
              '--config.train.num_train_steps=3'], mock_data)
  assert proc.returncode == 0, proc.stderr[-3000:]
  saved = results.read(str(tmp_path / 'sweep' / '001-activation=relu,seed=1'))
  assert saved['status'] == 'ok' and saved['steps'] == 3  # the override reached the trial
  assert saved['config']['seed'] == 1
  assert '| 1 | relu | 1 |' in proc.stdout  # the sweep table is printed


@pytest.mark.parametrize('override, message', [
    ('--config.seed=-5', 'error: seed=-5 must be between 0 and 4294967295'),
    ('--config.model.hidden_dims=(100000000,)',
     'error: model: 26,700,003,434 parameters need about'),
    ('--config.model.pool_type=("max","median")',
     "error: model.pool_type[1]='median' is not supported; allowed values: max, avg, none"),
    ('--config.optimizer.momentum=1.5', 'error: optimizer.momentum=1.5 must lie in [0, 1)'),
    ('--config.data.name=cifar100', "error: data.name='cifar100' is not prepared in "),
    ('--config.data.data_dir=/nowhere/tfds',
     "error: data.name='mnist' is not prepared in /nowhere/tfds"),
    ('--config.model.batch_norm=inside',
     "error: model.batch_norm='inside' is not supported; allowed values: none, before, after"),
    ('--config.model.compute_dtype=float16',
     "error: model.compute_dtype='float16' is not supported; allowed values: float32, bfloat16"),
    ('--config.train.label_smoothing=1.0',
     'error: train.label_smoothing=1.0 must lie in [0, 1)'),
    ('--distributed=auto', 'error: --distributed=auto found no cluster to join'),
    ('--sweep --workers=2 --distributed=auto',
     'error: --workers=2 with --distributed: the processes of a distributed command are one '
     'sweep worker'),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, mock_data, override, message):
  proc = run(['--config=experiments/pool.py', f'--workdir={tmp_path}', *override.split()],
             mock_data)
  assert proc.returncode == 2, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and errors[0].startswith(message), proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines() == errors  # (JAX's "no TPU" line filtered out too)
  assert not os.path.exists(tmp_path / 'results.json')


def test_verbose_keeps_the_traceback(tmp_path):
  proc = run(['--config=experiments/pool.py', f'--workdir={tmp_path}', '--config.seed=-5',
              '--verbose'])
  assert proc.returncode != 0
  assert 'Traceback' in proc.stderr and 'ConfigError: seed=-5' in proc.stderr


HOLD_LOCK = '''
import sys, time
from cnn_jax.engine import workdir_lock
lock = workdir_lock.WorkdirLock(sys.argv[1]).acquire()  # held while this process lives
print('locked', flush=True)
time.sleep(120)
'''


def test_one_run_per_workdir_and_a_stale_lock_is_taken_over(tmp_path, mock_data):
  holder = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    args = ['--config=experiments/pool.py', f'--workdir={tmp_path}',
            '--config.train.num_train_steps=3', '--config.train.batch_size=16']
    proc = run(args, mock_data)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f'is in use by process {holder.pid}' in proc.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / 'results.json')
  finally:
    holder.kill()
    holder.wait()
  # The killed holder's lock file is still there, naming it: the next run takes it over.
  assert open(tmp_path / '.lock').read() == str(holder.pid)
  proc = run(args, mock_data)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert results.read(str(tmp_path))['status'] == 'ok'


WITHOUT_TENSORFLOW = '''
import atexit, runpy, sys
class NoTensorFlow:  # as on a machine where TensorFlow is not installed
  def find_spec(self, name, path, target=None):
    if name.split('.')[0] in ('tensorflow', 'tensorflow_datasets'):
      raise ImportError(f'{name} is not installed here')
sys.meta_path.insert(0, NoTensorFlow())
atexit.register(lambda: print('tensorflow loaded:', 'tensorflow' in sys.modules))
sys.argv = ['launch.py'] + sys.argv[1:]
runpy.run_path('launch.py', run_name='__main__')
'''


def test_a_run_without_tensorflow_reads_prepared_files_and_writes_events(tmp_path):
  from tests.test_train import read_scalars  # pylint: disable=g-import-not-at-top
  prepared_data.write_prepared(tmp_path / 'tfds', {'train': 96, 'test': 32})
  cache = tmp_path / 'cache'  # empty: the split is decoded from the prepared files
  run_dir = tmp_path / 'run'
  proc = subprocess.run(
      [sys.executable, '-c', WITHOUT_TENSORFLOW, '--config=experiments/pool.py',
       f'--workdir={run_dir}', '--config.train.num_train_steps=3',
       '--config.train.batch_size=16', '--config.train.eval_batch_size=32'],
      cwd=ROOT, capture_output=True, text=True, timeout=patience(300),
      env=dict(os.environ, CNN_JAX_NO_TCMALLOC='1', CNN_JAX_CACHE=str(cache),
               TFDS_DATA_DIR=str(tmp_path / 'tfds')))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == 'tensorflow loaded: False'
  saved = results.read(str(run_dir))
  assert saved['status'] == 'ok' and saved['num_examples'] == {'train': 96, 'test': 32}
  scalars, accumulator = read_scalars(str(run_dir))
  assert 'eval/test/error' in scalars and accumulator.PluginTagToContent('hparams')
  # The cache was missed, then filled: the arrays came from the prepared files.
  assert sorted(p.name.split('-')[0] for p in (cache / 'datasets').rglob('*.npz')) == [
      'test', 'train']
