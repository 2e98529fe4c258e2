"""What the engine computes, as fingerprints to compare across a refactoring: for fixed seeds,
the results.json (less its clocks) and the trained parameters of four runs, each hashed.

    python benchmarks/engine_fingerprint.py --out=/tmp/fp-new.json [--checkout=DIR]
    python benchmarks/engine_fingerprint.py --compare=/tmp/fp-old.json,/tmp/fp-new.json

--checkout runs another checkout's launch.py (a `git worktree add /tmp/base <commit>` of the
commit before a change), so one command measures both sides on one machine. The runs, on real
MNIST ($TFDS_DATA_DIR) with XLA's own layers (the layer cache of a machine must not decide):
  t2         T2 for 300 steps;
  group      seeds 0, 1, 2 of T2 for 300 steps as one vmapped group (sweep.strategy=vmap);
  resumed    T2 for 300 steps, SIGTERM'd after its step-100 line, then the same command;
  processes  T2 for 300 steps over 2 processes of 2 CPU devices each (jax.distributed).
Equal fingerprints mean bit-for-bit equal parameters and equal results (the step counts,
losses, errors, confusion counts and everything else results.json records except seconds,
dates, paths and the machine). `resumed` equals `t2` when resumption is exact.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cnn_jax import cli  # pylint: disable=wrong-import-position
from cnn_jax.errors import InputError  # pylint: disable=wrong-import-position

flags.DEFINE_string('out', '', 'Where to write the fingerprints (JSON).')
flags.DEFINE_string('checkout', ROOT, 'The checkout whose launch.py runs (default: this one).')
flags.DEFINE_list('runs', ['t2', 'group', 'resumed', 'processes'], 'Which runs.')
flags.DEFINE_list('compare', [], 'Two fingerprint files: print where they differ, exit 1 if '
                  'they do.')
FLAGS = flags.FLAGS

T2 = ['--config=experiments/pool.py', '--config.train.num_train_steps=300',
      '--config.train.log_every_steps=100', '--config.train.pictures=none',
      '--config.model.conv_impl=xla', '--config.model.pool_impl=xla']
SEEDS = textwrap.dedent('''
    """Seeds 0, 1, 2 of T2 as one vmapped group (benchmarks/engine_fingerprint.py)."""
    from experiments import pool

    def get_config(arg=None):
      config = pool.get_config(arg)
      config.sweep.strategy = 'vmap'
      return config

    def get_sweep(h, arg=None):
      return h.sweep('seed', [0, 1, 2])
    ''')
# results.json's fields that say when, where and how fast, not what was computed.
CLOCKS = ('wall_seconds', 'train_seconds', 'seconds', 'examples_per_second',
          'steps_per_second', 'started', 'finished', 'date', 'time', 'environment', 'workdir',
          'eta_seconds', 'first_step_seconds', 'compile_seconds')


def _without_clocks(value):
  if isinstance(value, dict):
    return {k: _without_clocks(v) for k, v in value.items()
            if k not in CLOCKS and not k.endswith('_seconds')}
  if isinstance(value, list):
    return [_without_clocks(v) for v in value]
  return value


def fingerprint(run_dir: str) -> dict:
  """sha256 of results.json without its clocks, and of the checkpoint's parameters."""
  from cnn_jax.engine import results  # pylint: disable=g-import-not-at-top
  from tests.test_train import read_params  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  record = _without_clocks(results.read(run_dir))
  params = hashlib.sha256()
  for leaf in jax.tree_util.tree_leaves(read_params(run_dir)):
    params.update(np.ascontiguousarray(leaf).tobytes())
  return {'results': hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest(),
          'params': params.hexdigest(), 'steps': record.get('steps'),
          'test_error': ((record.get('final') or {}).get('test') or {}).get('error')}


def _environment(devices: int = 1) -> dict:
  env = dict(os.environ, CNN_JAX_NO_TCMALLOC='1')
  env.pop('PJRT_NPROC', None)
  if devices > 1:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return env


def _launch(args: list[str], env: dict, log: str | None = None):
  output = open(log, 'w') if log else subprocess.DEVNULL
  return subprocess.Popen([sys.executable, 'launch.py', *args], cwd=FLAGS.checkout, env=env,
                          stdout=output, stderr=subprocess.STDOUT)


def _finish(proc) -> None:
  if proc.wait() != 0:
    raise SystemExit(f'a run ended with exit status {proc.returncode}')


def run_t2(work: str) -> list[str]:
  _finish(_launch([*T2, f'--workdir={work}/t2'], _environment()))
  return [f'{work}/t2']


def run_group(work: str) -> list[str]:
  with open(f'{work}/seeds.py', 'w') as f:
    f.write(SEEDS)
  args = [f'--config={work}/seeds.py', *T2[1:], f'--workdir={work}/group', '--sweep']
  _finish(_launch(args, _environment()))
  return sorted(os.path.join(work, 'group', d) for d in os.listdir(f'{work}/group')
                if d[:3].isdigit())


def run_resumed(work: str) -> list[str]:
  args, log = [*T2, f'--workdir={work}/resumed'], f'{work}/resumed.log'
  proc = _launch(args, _environment(), log)
  while proc.poll() is None and 'step 100/300' not in open(log).read():
    time.sleep(0.1)
  proc.send_signal(signal.SIGTERM)
  if proc.wait() != 143:
    raise SystemExit(f'the SIGTERM\'d run ended with {proc.returncode}, not 143: {log}')
  _finish(_launch(args, _environment()))
  return [f'{work}/resumed']


def run_processes(work: str) -> list[str]:
  with socket.socket() as s:
    s.bind(('', 0))
    port = s.getsockname()[1]
  procs = [_launch([*T2, f'--workdir={work}/processes', '--distributed=explicit',
                    f'--coordinator=localhost:{port}', '--num_processes=2',
                    f'--process_id={i}'], _environment(2)) for i in range(2)]
  for proc in procs:
    _finish(proc)
  return [f'{work}/processes']


RUNS = {'t2': run_t2, 'group': run_group, 'resumed': run_resumed, 'processes': run_processes}


def compare(old_path: str, new_path: str) -> int:
  with open(old_path) as f:
    old = json.load(f)
  with open(new_path) as f:
    new = json.load(f)
  differ = 0
  for run in sorted(set(old['runs']) | set(new['runs'])):
    same = old['runs'].get(run) == new['runs'].get(run)
    differ += not same
    print(f'{run}: {"identical" if same else "DIFFERENT"}'
          + ('' if same else f' ({old["runs"].get(run)} against {new["runs"].get(run)})'))
  print(f'{old["commit"]} against {new["commit"]}: '
        + ('bit for bit the same' if not differ else f'{differ} run(s) differ'))
  return 1 if differ else 0


def main(argv) -> int:
  del argv  # cli.parse_flags refuses arguments that are not flags
  if FLAGS.compare:
    if len(FLAGS.compare) != 2:
      raise InputError('--compare takes two fingerprint files: OLD,NEW')
    return compare(*FLAGS.compare)
  unknown = set(FLAGS.runs) - set(RUNS)
  if unknown or not FLAGS.out:
    raise InputError(f'--out is required, and --runs takes {", ".join(RUNS)}'
                     + (f' (not {", ".join(sorted(unknown))})' if unknown else ''))
  commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=FLAGS.checkout,
                          capture_output=True, text=True).stdout.strip()
  found = {'commit': commit, 'runs': {}}
  with tempfile.TemporaryDirectory() as work:
    for name in FLAGS.runs:
      started = time.time()
      dirs = RUNS[name](work)
      found['runs'][name] = [fingerprint(d) for d in dirs]
      print(f'{name}: {len(dirs)} run(s) in {time.time() - started:.0f} s: '
            + ', '.join(f'{f["params"][:12]} (test error {f["test_error"]})'
                        for f in found['runs'][name]), flush=True)
  with open(FLAGS.out, 'w') as f:
    json.dump(found, f, indent=1)
  print(f'written: {FLAGS.out} ({commit})')
  return 0


if __name__ == '__main__':
  cli.run(main)
