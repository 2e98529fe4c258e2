"""atomic_files.py on a real full filesystem (a 16 KB tmpfs; root only)."""
import os

import pytest

from cnn_jax import atomic_files
from cnn_jax.engine import events


@pytest.fixture
def tiny_disk(tmpfs):
  return tmpfs('16k')


def test_a_write_that_does_not_fit_leaves_the_old_file_and_no_temporary(tiny_disk):
  path = str(tiny_disk / 'results.json')
  atomic_files.write_text(path, 'old')
  with pytest.raises(atomic_files.DiskError, match=r'cannot write .*results.json: No space'):
    atomic_files.write_bytes(path, b'x' * 100_000)
  assert open(path).read() == 'old'
  assert os.listdir(tiny_disk) == ['results.json']


def test_an_events_file_on_a_full_disk_raises_disk_error_and_closes_quietly(tiny_disk):
  writer = events.EventWriter(str(tiny_disk))
  with pytest.raises(atomic_files.DiskError, match='events.out.tfevents'):
    for step in range(10_000):
      writer.write_scalars(step, {'train/loss': 1.0, 'train/error': 0.5})
      writer.flush()
  writer.close()  # no second error


def test_a_sweep_table_is_not_rewritten_without_finished_trials_it_held(tmp_path):
  """A study that lost trials (another --storage, a deleted study.db) must not wipe the
  finished ones from sweep.csv; a trial still pending may go, and more trials may come."""
  import types  # pylint: disable=g-import-not-at-top
  from cnn_jax.errors import InputError  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import tables  # pylint: disable=g-import-not-at-top
  trials = [types.SimpleNamespace(overrides={'seed': k}, name=f'00{k}-seed={k}',
                                  config=types.SimpleNamespace(seed=k)) for k in range(3)]
  row = lambda k, status: {'index': k, 'trial': f'00{k}-seed={k}', 'seed': k, 'status': status,
                           'params': 0, 'seconds': 0, 'message': '',
                           **{column: None for column, _, _ in tables.metric_columns()}}
  tables.write_tables(str(tmp_path), trials, [row(0, 'ok'), row(1, 'diverged'), row(2, 'pending')])
  held = (tmp_path / 'sweep.csv').read_bytes()
  with pytest.raises(InputError, match=r'holds 1 result\(s\) that this command would drop '
                                       r'\(001-seed=1\).*--storage'):
    tables.write_tables(str(tmp_path), trials, [row(0, 'ok'), row(2, 'ok')])
  assert (tmp_path / 'sweep.csv').read_bytes() == held
  tables.write_tables(str(tmp_path), trials, [row(0, 'ok'), row(1, 'diverged'), row(2, 'ok')])
  assert [r['status'] for r in tables.read_csv(str(tmp_path))[1]] == ['ok', 'diverged', 'ok']
