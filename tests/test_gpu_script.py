"""benchmarks/gpu.py at tiny sizes on CPU: every item runs and writes its figures, so that the
one command a GPU host gets (15 minutes of device time) works the first time."""
import json
import os
import subprocess
import sys

from cnn_jax.machine import patience
from tests import prepared_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_item_runs_at_tiny_sizes_and_writes_its_figures(tmp_path):
  data = tmp_path / 'tfds'
  prepared_data.write_prepared(data, {'train': 1024, 'test': 256})
  plan = subprocess.run([sys.executable, 'benchmarks/gpu.py', f'--out={tmp_path}',
                         '--estimate_only'], cwd=ROOT, capture_output=True, text=True, timeout=60)
  estimate = int(plan.stdout.split('at most ')[1].split(' s')[0])
  assert estimate < 600, plan.stdout  # the full sizes' bound: under 10 minutes
  proc = subprocess.run([sys.executable, 'benchmarks/gpu.py', f'--out={tmp_path / "out"}',
                         '--size=tiny'], cwd=ROOT, capture_output=True, text=True,
                        timeout=patience(900), env=dict(os.environ, TFDS_DATA_DIR=str(data)))
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  with open(tmp_path / 'out' / 'results.json') as f:
    results = json.load(f)
  assert results['facts']['backend'] == 'cpu' and results['facts']['jax']
  items = results['items']
  assert list(items) == ['tests', 't2', 'steps_per_call', 'sweep', 'speedrun', 'search']
  assert items['tests']['status'] == 0 and 'passed' in items['tests']['summary']
  t2 = items['t2']
  assert all(t2[run]['status'] == 0 and t2[run]['test_error'] is not None
             for run in ('first', 'again', 'deterministic', 'deterministic_again'))
  # CPU is deterministic: the same command gives the same bits, with or without the flag.
  assert t2['identical_parameters'] == {'first/again': True,
                                        'deterministic/deterministic_again': True}
  assert items['steps_per_call']['pool.epoch']['steps_per_call'] == 1024 // 64
  assert items['steps_per_call']['pool.1']['steps_per_second'] > 0
  assert 'row' in items['sweep']['K=2']
  assert items['speedrun']['seed 0']['test_accuracy'] is not None
  assert items['search']['status'] == 0 and items['search']['trials'] == {'ok': 2}
  assert '## search' in (tmp_path / 'out' / 'results.md').read_text()
