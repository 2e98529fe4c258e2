"""Runs that survive their signals and a full disk, with real signals, a real full
filesystem and real commands on the real T2. SIGTERM or SIGINT mid-epoch checkpoints at the
next step and exits with one line (cnn_jax/interrupts.py); the same command resumes bit for
bit. A full disk ends a run with one line, leaving no half-written file (atomic_files.py);
the same command finishes once there is space. The signal tests start launch.py in a
subprocess and signal it once its log shows step 100 of 300 (an epoch is 938 steps, so the
checkpoint is mid-epoch)."""
import glob
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from cnn_jax.engine import checkpoint
from cnn_jax.engine import results
from cnn_jax.machine import patience
from tests.conftest import real_data_or_skip
from tests.test_train import read_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_LINE = re.compile(r'^[IWEF]\d{4} \d\d:\d\d:\d\d')  # absl's, the log's
T2 = ['--config=experiments/pool.py', '--config.train.num_train_steps=300',
      '--config.train.log_every_steps=100', '--config.train.pictures=none',  # (slow to draw)
      # XLA's layers whatever the layer cache says: a sweep worker has one core, and the
      # layer choice per core count would otherwise make its run a different program.
      '--config.model.conv_impl=xla', '--config.model.pool_impl=xla']


@pytest.fixture(scope='module')
def env():
  return dict(os.environ, TFDS_DATA_DIR=real_data_or_skip(), CNN_JAX_NO_TCMALLOC='1')


def launch(args, env, log_path):
  log = open(log_path, 'w')
  return subprocess.Popen([sys.executable, 'launch.py', *args], cwd=ROOT, env=env,
                          stdout=log, stderr=subprocess.STDOUT, text=True)


def signal_at(proc, log_path, signum, line='step 100/300', count=1, timeout=240):
  """Sends `signum` once `line` is in the log `count` times; returns the exit status."""
  deadline = time.time() + patience(timeout)
  while time.time() < deadline and proc.poll() is None:
    with open(log_path) as f:
      if f.read().count(line) >= count:
        break
    time.sleep(0.2)
  assert proc.poll() is None, open(log_path).read()[-3000:]
  proc.send_signal(signum)
  return proc.wait(timeout=patience(120))


def same_params(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(read_params(a)),
                                                 jax.tree_util.tree_leaves(read_params(b))))


def run_whole(workdir, env):
  proc = subprocess.run([sys.executable, 'launch.py', *T2, f'--workdir={workdir}'], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=patience(600))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, env):
  return run_whole(str(tmp_path_factory.mktemp('whole')), env)


def interrupt(tmp_path, env, signum, status):
  workdir = str(tmp_path / 'run')
  args = [*T2, f'--workdir={workdir}']
  log = str(tmp_path / 'log')
  assert signal_at(launch(args, env, log), log, signum) == status
  text = open(log).read()
  assert 'Traceback' not in text
  stopped = [l for l in text.splitlines() if l.startswith('stopped by')]
  assert len(stopped) == 1 and signal.Signals(signum).name in stopped[0], text[-2000:]
  assert 'run the same command again: python launch.py' in stopped[0]
  step = checkpoint.saved_step(workdir)
  assert 100 <= step < 300  # mid-epoch: the first epoch ends at step 938
  assert results.read(workdir) is None
  return workdir, args, step


def test_ctrl_c_checkpoints_and_exits_with_130_and_one_line(tmp_path, env):
  interrupt(tmp_path, env, signal.SIGINT, 130)  # it resumes as after a SIGTERM (below)


def test_sigterm_mid_epoch_checkpoints_and_the_same_command_resumes_bit_for_bit(
    tmp_path, env, uninterrupted):
  workdir, args, step = interrupt(tmp_path, env, signal.SIGTERM, 143)
  again = subprocess.run([sys.executable, 'launch.py', *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=patience(600))
  assert again.returncode == 0, again.stderr[-3000:]
  assert f'at step {step}' in again.stderr  # "Resuming ... at step N"
  assert same_params(workdir, uninterrupted)
  assert results.read(workdir)['final']['test'] == results.read(uninterrupted)['final']['test']
  # The train metrics too: the checkpoint kept the sums of the steps before it.
  assert ([h['train'] for h in results.read(workdir)['history']]
          == [h['train'] for h in results.read(uninterrupted)['history']])


SWEEP = textwrap.dedent('''
    """Two seeds of T2 (tests/test_interrupts.py)."""
    from experiments import pool

    def get_config(arg=None):
      return pool.get_config(arg)

    def get_sweep(h, arg=None):
      return h.sweep('seed', [0, 1])
    ''')


def test_sigterm_to_a_sweep_with_two_worker_processes(tmp_path, env):
  experiment = tmp_path / 'seeds.py'
  experiment.write_text(SWEEP)
  sweep_dir = str(tmp_path / 'sweep')
  # 900 steps: a worker starts seconds after the other, and must not finish before the
  # signal comes once both logged step 100.
  args = [f'--config={experiment}', *T2[1:], '--config.train.num_train_steps=900',
          f'--workdir={sweep_dir}', '--sweep', '--workers=2']
  log = str(tmp_path / 'log')
  # The parent alone gets the signal (as from `kill PID`) and passes it on to its workers.
  assert signal_at(launch(args, env, log), log, signal.SIGTERM, 'step 100/900', count=2) == 143
  text = open(log).read()
  assert 'Traceback' not in text
  assert text.count('sweep-worker-') >= 2 and text.count('stopped by SIGTERM') == 3, text[-3000:]
  # From the signal on, one line from the command the user typed, the last; the signal's
  # arrival (once) and each worker's stop are in the log.
  assert text.count('SIGTERM received') == 1, text[-3000:]
  after = text[text.index('SIGTERM received'):].splitlines()[1:]
  said = [line for line in after if line.strip() and not LOG_LINE.match(line)]
  assert len(said) == 1 and said[0] == after[-1], after
  assert said[0].startswith('stopped by SIGTERM (its workers checkpointed their runs)'), said
  runs = [os.path.join(sweep_dir, name) for name in ('000-seed=0', '001-seed=1')]
  for run in runs:
    assert 100 <= checkpoint.saved_step(run) < 900 and results.read(run) is None
  again = subprocess.run([sys.executable, 'launch.py', *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=patience(600))
  assert again.returncode == 0, again.stderr[-3000:]
  assert all(results.read(run)['status'] == 'ok' for run in runs)
  # Each from its checkpoint (that this resumes bit for bit is the single run's test above:
  # a worker trains through the same loop).
  assert again.stderr.count('Resuming') == 2


@pytest.fixture
def small_disk(tmpfs):
  """60 KB: room for T2's config, events and checkpoint (25 KB), not for its test
  predictions (400 KB)."""
  return tmpfs('60k')


def test_a_full_disk_is_one_line_and_the_same_command_finishes_once_there_is_room(
    small_disk, env, uninterrupted):
  workdir = str(small_disk / 'run')
  args = [sys.executable, 'launch.py', *T2, f'--workdir={workdir}']
  full = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=patience(600))
  assert full.returncode == 2
  assert 'Traceback' not in full.stderr
  lines = [l for l in full.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and 'No space left on device' in lines[0], full.stderr[-2000:]
  assert 'test_predictions.npz' in lines[0]
  assert not glob.glob(os.path.join(workdir, '**', '*.tmp*'), recursive=True)
  assert checkpoint.saved_step(workdir) == 300  # the last good checkpoint, whole
  assert results.read(workdir) is None
  subprocess.run(['mount', '-o', 'remount,size=20m', str(small_disk)], check=True)
  again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=patience(600))
  assert again.returncode == 0, again.stderr[-3000:]
  assert same_params(workdir, uninterrupted)
  assert results.read(workdir)['final']['test'] == results.read(uninterrupted)['final']['test']


class SignalAtEvaluation:
  """An observer that sends this process SIGTERM at the evaluation of `step`: the signal
  then comes during the training call that ends at the next evaluation."""

  def __init__(self, step):
    self.step = step

  def epoch_end(self, event):
    if event.step == self.step:
      os.kill(os.getpid(), signal.SIGTERM)

  def should_stop(self, event):
    del event

  def run_end(self, event):
    del event

  def close(self, cancel=False):
    del cancel

  def recorded(self, record):
    del record


def test_a_signal_during_the_steps_before_an_evaluation_stops_after_it(
    tmp_path, tiny_config, mock_mnist):
  """The loop checks for a signal after each training call; when that call ends at a log
  step or an evaluation, it stops only once they are done, so the resumed run has every
  evaluation an uninterrupted one has (a pruner compares trials at each of them)."""
  from cnn_jax import interrupts  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import loop  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import plan as plan_lib  # pylint: disable=g-import-not-at-top
  tiny_config.train.eval_every_steps = 1  # (12 steps of one call each on CPU)
  workdir = str(tmp_path / 'run')
  with pytest.raises(interrupts.Interrupted, match='stopped by SIGTERM at step 4 of 12'):
    loop.train(plan_lib.make([tiny_config]), [workdir], [[SignalAtEvaluation(3)]])
  assert checkpoint.saved_step(workdir) == 4
  resumed = loop.train(plan_lib.make([tiny_config]), [workdir])[0]
  assert [h['step'] for h in resumed['history']] == list(range(1, 13))


def test_a_signal_between_log_steps_keeps_the_train_sums_so_far(
    tmp_path, tiny_config, mock_mnist, monkeypatch):
  """Stopped at step 6 (log steps 4, 8, 12; evaluations 8 and 12), the checkpoint keeps the
  sums of steps 5-6 and of 1-4: the resumed run logs the train metrics of an uninterrupted
  one, bit for bit."""
  from cnn_jax import interrupts  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import loop  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import plan as plan_lib  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import program as program_lib  # pylint: disable=g-import-not-at-top
  whole = loop.train(plan_lib.make([tiny_config]), [str(tmp_path / 'whole')])[0]
  real_train = program_lib.Program.train

  def train_then_signal(self, state, step, *args):
    if step == 5:  # during the call that ends at step 6
      os.kill(os.getpid(), signal.SIGTERM)
    return real_train(self, state, step, *args)
  workdir = str(tmp_path / 'run')
  with monkeypatch.context() as patch:
    patch.setattr(program_lib.Program, 'train', train_then_signal)
    with pytest.raises(interrupts.Interrupted, match='at step 6 of 12'):
      loop.train(plan_lib.make([tiny_config]), [workdir])
  resumed = loop.train(plan_lib.make([tiny_config]), [workdir])[0]
  assert [h['train'] for h in resumed['history']] == [h['train'] for h in whole['history']]
  assert resumed['final'] == whole['final']
