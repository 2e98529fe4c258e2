"""Every figure the GPU issues ask for, in one command, in priority order, each item bounded in
time, the results written as they come (a run cut short keeps what it measured).

    # On the GPU host (docs/RUNNING.md, "A GPU host without internet"), full sizes:
    TFDS_DATA_DIR=DATA python benchmarks/gpu.py --out=gpu_results
    # On CPU, every item at tiny sizes (tests/test_gpu_script.py runs this):
    python benchmarks/gpu.py --out=/tmp/g --size=tiny

Items, in order (--items picks some):
  tests            the engine, devices, layers, sweeps and search test files under pytest
  t2               experiments/pool.py (T2, 10 epochs): test error, training and whole-process
                   seconds; the same command again (identical parameters or not), and with
                   train.deterministic=True (identical to each other or not, and its cost)
  steps_per_call   steps per second at 1, 10, 100 steps and a whole epoch per call, T2 and T3
                   (benchmarks/train_loop.py; layers as 'auto' picks them)
  sweep            trials per hour for K = 1, 8, 64, 256 T2 trials one after another, as
                   vmapped groups, and as 2 worker processes (benchmarks/sweep.py)
  speedrun         experiments/speedrun.py over seeds 0-4: accuracy, training, whole process
  search           a vmapped search (experiments/pool.py:sweep=search, groups of 8)

Each item runs as child processes (this process never starts JAX, so it holds no GPU memory)
under a time budget; the budgets sum to the estimate printed before the start, an upper bound
of the whole run. <out>/results.json holds every figure with the device name and the JAX
version; <out>/results.md the same as tables.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cnn_jax import cli  # pylint: disable=wrong-import-position  (no JAX: only its children)
from cnn_jax.errors import InputError  # pylint: disable=wrong-import-position
TEST_FILES = ('tests/test_step.py', 'tests/test_devices.py', 'tests/test_layers.py',
              'tests/test_groups.py', 'tests/test_sweep.py', 'tests/test_search.py')
# Sizes: full for the GPU host, tiny to check every item on CPU in seconds. Budgets are each
# item's seconds at most (the full ones sum to under 10 minutes with start-up).
SIZES = {
    'full': dict(t2_steps=0, spc_models=('pool', 'keras_cnn'), spc=(1, 10, 100, 'epoch'),
                 spc_steps=2000, ks=(1, 8, 64, 256), sweep_steps=200,
                 sweep_strategies='sequential,vmap,processes', seeds=5, search_trials=32,
                 tests=TEST_FILES, overrides=(),
                 budgets=dict(tests=100, t2=150, steps_per_call=70, sweep=110, speedrun=55,
                              search=45)),
    # XLA's layers: 'auto' would first time every layer shape (tests/test_layers.py does).
    'tiny': dict(t2_steps=4, spc_models=('pool',), spc=(1, 'epoch'), spc_steps=8, ks=(2,),
                 sweep_steps=3, sweep_strategies='sequential,vmap', seeds=1, search_trials=2,
                 tests=('tests/test_process_pool.py',),
                 overrides=('--config.model.conv_impl=xla', '--config.model.pool_impl=reshape',
                            '--config.train.pictures=none'),
                 budgets=dict(tests=120, t2=180, steps_per_call=120, sweep=120, speedrun=120,
                              search=120)),
}
ITEMS = ('tests', 't2', 'steps_per_call', 'sweep', 'speedrun', 'search')
START_UP = 30  # seconds: the device facts, a fresh host's first imports and data decode


class Results:
  """The figures so far, rewritten to <out> after every item."""

  def __init__(self, out: str, facts: dict):
    self.out, self.data = out, {'facts': facts, 'items': {}}
    os.makedirs(out, exist_ok=True)

  def add(self, item: str, figures: dict) -> None:
    self.data['items'][item] = figures
    with open(os.path.join(self.out, 'results.json'), 'w') as f:
      json.dump(self.data, f, indent=1)
    with open(os.path.join(self.out, 'results.md'), 'w') as f:
      f.write(self.markdown())

  def markdown(self) -> str:
    facts = self.data['facts']
    lines = [f'# GPU figures: {facts["device"]}, jax {facts["jax"]} ({facts["backend"]}), '
             f'Python {facts["python"]}, {facts["date"]}', '']
    for item, figures in self.data['items'].items():
      lines += [f'## {item}', '', '| figure | value |', '| --- | --- |']
      lines += [f'| {name} | {value} |' for name, value in _flat(figures).items()]
      lines.append('')
    return '\n'.join(lines)


def _flat(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


class Clock:
  """One item's budget: each command gets what is left of it."""

  def __init__(self, seconds: float):
    self.end = time.time() + seconds

  def left(self) -> float:
    return max(1.0, self.end - time.time())


def run(command: list[str], clock: Clock, env: dict | None = None) -> dict:
  """`command` (python first) from the repository root: its exit status, wall seconds and
  output; 'timed out' when the item's budget ran out."""
  started = time.time()
  try:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=clock.left(), env={**os.environ, **(env or {})})
    status, output = proc.returncode, proc.stdout + proc.stderr
  except subprocess.TimeoutExpired as expired:
    status = 'timed out'
    output = (expired.stdout or b'').decode() if isinstance(expired.stdout, bytes) else (
        expired.stdout or '')
  return {'status': status, 'seconds': round(time.time() - started, 1), 'output': output}


def launch_result(output: str) -> dict:
  """The JSON line launch.py prints last for a run."""
  for line in reversed(output.splitlines()):
    if line.startswith('{"status"'):
      return json.loads(line)
  return {}


def device_facts() -> dict:
  probe = ('import jax, json, platform; print(json.dumps({"device": jax.devices()[0].device_kind,'
           ' "devices": jax.device_count(), "backend": jax.default_backend(), '
           '"jax": jax.__version__, "python": platform.python_version()}))')
  out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                       timeout=120, env={**os.environ, 'XLA_PYTHON_CLIENT_PREALLOCATE': 'false'})
  facts = json.loads(out.stdout.strip().splitlines()[-1])
  facts['date'] = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
  return facts


def item_tests(size: dict, clock: Clock, work: str) -> dict:
  result = run([sys.executable, '-m', 'pytest', '-q', '-n', '0', '-p', 'no:cacheprovider',
                *size['tests']], clock)
  lines = result['output'].splitlines()
  summary = next((l for l in reversed(lines) if re.search(r'\d+ (passed|failed)', l)), '')
  failed = [l.split(' - ')[0] for l in lines if l.startswith(('FAILED ', 'ERROR '))]
  return {'status': result['status'], 'summary': summary.strip('= '), 'failed': failed,
          'seconds': result['seconds']}


def _params(workdir: str) -> dict:
  """A run's checkpointed parameters as numpy arrays (read here without starting JAX)."""
  import flax.serialization  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import checkpoint  # pylint: disable=g-import-not-at-top
  with open(checkpoint.path_in(workdir), 'rb') as f:
    return flax.serialization.msgpack_restore(f.read())['state']['params']


def _same_bits(a, b) -> bool:
  import numpy as np  # pylint: disable=g-import-not-at-top
  if isinstance(a, dict):
    return a.keys() == b.keys() and all(_same_bits(a[k], b[k]) for k in a)
  return bool(np.array_equal(a, b))


def _identical(a: str, b: str) -> bool | str:
  try:
    return _same_bits(_params(a), _params(b))
  except (OSError, KeyError) as error:
    return f'not compared: {error}'


def item_t2(size: dict, clock: Clock, work: str) -> dict:
  steps = ([f'--config.train.num_train_steps={size["t2_steps"]}'] if size['t2_steps'] else [])
  figures = {}
  for name, extra in (('first', []), ('again', []),
                      ('deterministic', ['--config.train.deterministic=True']),
                      ('deterministic_again', ['--config.train.deterministic=True'])):
    result = run([sys.executable, 'launch.py', '--config=experiments/pool.py',
                  f'--workdir={work}/t2-{name}', *steps, *extra, *size['overrides']], clock)
    out = launch_result(result['output'])
    figures[name] = {'status': result['status'], 'test_error': out.get('test_error'),
                     'train_seconds': out.get('train_seconds'),
                     'whole_process_seconds': result['seconds']}
    if result['status'] == 'timed out':
      break
  pairs = (('first', 'again'), ('deterministic', 'deterministic_again'))
  figures['identical_parameters'] = {
      f'{a}/{b}': _identical(f'{work}/t2-{a}', f'{work}/t2-{b}') for a, b in pairs
      if a in figures and b in figures}
  return figures


def item_steps_per_call(size: dict, clock: Clock, work: str) -> dict:
  figures = {}
  for experiment in size['spc_models']:  # T2, T3
    for k in size['spc']:
      result = run([sys.executable, 'benchmarks/train_loop.py',
                    f'--config=experiments/{experiment}.py', f'--steps={size["spc_steps"]}',
                    f'--steps_per_call={k}', *size['overrides']], clock)
      row = re.search(r'^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|', result['output'], re.M)
      figures[f'{experiment}.{k}'] = (
          {'steps_per_call': int(row[1]), 'steps_per_second': float(row[2]),
           'seconds_per_60k_epoch': float(row[3]), 'first_call_seconds': float(row[4])}
          if row else {'status': result['status'], 'tail': result['output'][-300:]})
  return figures


def item_sweep(size: dict, clock: Clock, work: str) -> dict:
  figures = {}
  for k in size['ks']:
    result = run([sys.executable, 'benchmarks/sweep.py', '--config=experiments/pool.py',
                  f'--ks={k}', f'--steps={size["sweep_steps"]}', '--processes=2',
                  f'--strategies={size["sweep_strategies"]}', '--record=False',
                  *size['overrides']], clock)
    row = re.search(rf'^\| {k} \| (.*) \|$', result['output'], re.M)
    figures[f'K={k}'] = ({'row': row[1]} if row else
                         {'status': result['status'], 'tail': result['output'][-300:]})
  return figures


def item_speedrun(size: dict, clock: Clock, work: str) -> dict:
  figures = {}
  for seed in range(size['seeds']):
    extra = [] if size['t2_steps'] == 0 else [f'--config.train.num_train_steps={size["t2_steps"]}']
    result = run([sys.executable, 'launch.py', '--config=experiments/speedrun.py',
                  f'--workdir={work}/speedrun-{seed}', f'--config.seed={seed}', *extra,
                  *size['overrides']], clock)
    out = launch_result(result['output'])
    figures[f'seed {seed}'] = {
        'status': result['status'],
        'test_accuracy': None if out.get('test_error') is None else 1 - out['test_error'],
        'train_seconds': out.get('train_seconds'), 'whole_process_seconds': result['seconds']}
  return figures


def item_search(size: dict, clock: Clock, work: str) -> dict:
  experiment = f'experiments/pool.py:sweep=search,trials={size["search_trials"]}'
  extra = ([] if size['t2_steps'] == 0 else
           [f'--config.train.num_train_steps={size["t2_steps"]}',
            '--config.data.num_validation=64'])  # (the tiny dataset's 1,024 images)
  result = run([sys.executable, 'launch.py', f'--config={experiment}', '--sweep',
                f'--workdir={work}/search', '--config.sweep.strategy=vmap',
                '--config.sweep.max_group_size=8', *extra, *size['overrides']], clock)
  rows = re.findall(r'^\| \d+ \|.*\| (ok|pruned|invalid|failed|pending|running) \|',
                    result['output'], re.M)
  best = re.search(r'^Best configuration[^\n]*', result['output'], re.M)
  return {'status': result['status'], 'seconds': result['seconds'],
          'trials': {state: rows.count(state) for state in sorted(set(rows))},
          'trials_per_hour': round(3600 * len(rows) / result['seconds'], 1),
          'best': best[0] if best else None}


FUNCTIONS = {'tests': item_tests, 't2': item_t2, 'steps_per_call': item_steps_per_call,
             'sweep': item_sweep, 'speedrun': item_speedrun, 'search': item_search}


flags.DEFINE_string('out', None, 'Folder for results.json and results.md.')
flags.DEFINE_enum('size', 'full', list(SIZES), 'full for the GPU host; tiny checks every '
                  'item on CPU.')
flags.DEFINE_list('items', list(ITEMS), f'Comma-separated, run in this order: {",".join(ITEMS)}.')
flags.DEFINE_bool('estimate_only', False, 'Print the plan and exit.')
flags.mark_flag_as_required('out')
args = flags.FLAGS


def main(argv) -> int:
  del argv  # cli.parse_flags refuses arguments that are not flags
  items = args.items
  unknown = [item for item in items if item not in ITEMS]
  if unknown:
    raise InputError(f'--items: {",".join(unknown)} unknown; allowed: {",".join(ITEMS)}')
  size = SIZES[args.size]
  total = START_UP + sum(size['budgets'][item] for item in items)
  print(f'plan ({args.size}): ' + ', '.join(f'{item} <= {size["budgets"][item]} s'
                                            for item in items))
  print(f'estimate: at most {total} s ({total / 60:.1f} min), each item bounded by its budget')
  if args.estimate_only:
    return 0
  facts = device_facts()
  print(f'device: {facts["device"]} x{facts["devices"]}, jax {facts["jax"]}', flush=True)
  results = Results(args.out, facts)
  work = tempfile.mkdtemp(prefix='cnn_jax-gpu-')
  try:
    for item in items:
      started = time.time()
      figures = FUNCTIONS[item](size, Clock(size['budgets'][item]), work)
      figures['item_seconds'] = round(time.time() - started, 1)
      results.add(item, figures)
      print(f'{item}: {json.dumps(figures)[:400]}', flush=True)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  print(f'written: {args.out}/results.json, {args.out}/results.md')
  return 0


if __name__ == '__main__':
  cli.run(main)
