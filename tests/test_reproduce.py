"""The reproduction table: verdicts, archive-based resumption, report format."""
import json
import os

import pytest

from cnn_jax.engine import results
from cnn_jax.reports import reproduction as reproduce

ROW = reproduce.Row('toy', 'Toy model', 'experiments/toy.py', (1.0,), '1.0')


@pytest.mark.parametrize('errors, verdict', [
    ([1.1, 0.9, 1.2, 0.8, 1.0], '1.00 within mean ± 2 std'),
    ([0.5, 0.6, 0.55, 0.5, 0.6], 'ours better than 1.00'),
    ([1.5, 1.52, 1.49, 1.51, 1.5], 'MISSED: 1.00 is below our mean - 2 std'),
])
def test_verdicts(errors, verdict):
  assert reproduce.RowFigures(ROW, errors, 10, [1.0] * 5).verdict() == verdict


def test_verdict_with_two_reported_runs_and_none():
  two = reproduce.Row('t', 'T', 'e.py', (1.29, 1.22), '1.29, 1.22')
  assert reproduce.RowFigures(two, [1.25, 1.2, 1.3], 1, [1.0] * 3).verdict() == (
      '1.29 within mean ± 2 std; 1.22 within mean ± 2 std')
  none = reproduce.Row('t', 'T', 'e.py', (), 'none given')
  assert 'no figure' in reproduce.RowFigures(none, [1.0], 1, [1.0]).verdict()
  assert reproduce.RowFigures(ROW, [], None, []).verdict() == 'not run yet'


def write_archived(archive, row, seed, test_error, seconds=12.0):
  path = reproduce.archived_path(archive, row, seed)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump({'status': 'ok', 'test_error': test_error, 'params': 5994,
               'wall_seconds': seconds}, f)


def test_report_from_the_archive(tmp_path, monkeypatch):
  monkeypatch.setattr(reproduce, 'ROWS', (ROW,))
  for seed, error in enumerate([0.011, 0.012, 0.010]):
    write_archived(str(tmp_path), ROW, seed, error)
  figures = reproduce.collect(str(tmp_path), seeds=5)
  assert figures[0].errors == pytest.approx([1.1, 1.2, 1.0])
  report = reproduce.format_report(figures, 5, 'test machine')
  assert ('| Toy model | `experiments/toy.py` | 1.0 | 1.10 | 0.10 | 1.00 | 1.20 | 3 | 5,994 | 12 |'
          in report)
  assert 'Machine: test machine.' in report
  # A rewrite from the archive alone keeps the machine line (and remark) of the runs.
  path = tmp_path / 'REPRODUCTION.md'
  path.write_text(reproduce.format_report(figures, 5, 'a machine', 'Run alone. On Tuesday.'))
  assert reproduce.recorded_machine(str(path)) == 'a machine. Run alone. On Tuesday'
  assert reproduce.format_report(figures, 5, reproduce.recorded_machine(str(path))) == (
      path.read_text())
  assert reproduce.recorded_machine(str(tmp_path / 'none.md')) is None
  header = [c.strip() for c in report.split('\n| model')[1].split('\n')[0].split('|')]
  assert header[1:-1] == ['config', 'reported error %', 'ours mean %', 'ours std %', 'ours min %',
                          'ours max %', 'seeds', 'params', 'seconds per run']


def test_archived_runs_are_not_run_again(tmp_path, monkeypatch):
  write_archived(str(tmp_path), ROW, 0, 0.01)
  def must_not_load(spec):
    raise AssertionError(f'{spec} was run again')
  monkeypatch.setattr(reproduce.files, 'load_config', must_not_load)
  reproduce.run_row(ROW, 1, str(tmp_path / 'runs'), str(tmp_path))  # nothing to do


def test_a_missed_row_demands_an_explanation(tmp_path, monkeypatch):
  monkeypatch.setattr(reproduce, 'ROWS', (ROW,))
  monkeypatch.setattr(reproduce, 'EXPLANATIONS', {})
  for seed in range(5):
    write_archived(str(tmp_path), ROW, seed, 0.015 + seed * 1e-4)
  report = reproduce.format_report(reproduce.collect(str(tmp_path), 5), 5, 'm')
  assert 'MISSED' in report and 'NOT YET EXPLAINED' in report


def test_the_archive_of_schema_version_1_reads_as_version_2():
  """docs/reproduction_results was written before results.json had a schema version."""
  figures = reproduce.collect(reproduce.files.REPO_ROOT + '/docs/reproduction_results', 5)
  pool = next(f for f in figures if f.row.key == 'cntk_pool')
  assert len(pool.errors) == 5 and pool.params == 5_994
  record = reproduce.read_archived(reproduce.files.REPO_ROOT + '/docs/reproduction_results',
                                   pool.row, 0)
  assert record['schema_version'] == results.SCHEMA_VERSION and record['upgraded_from'] == 1
  assert results.final_metric(record, 'test', 'error') == pytest.approx(pool.errors[0] / 100)
  assert set(record['history'][-1]) >= {'epoch', 'step', 'train', 'test'}


def test_per_class_accuracy_of_rows_whose_archive_has_confusions(tmp_path, monkeypatch):
  per_class = reproduce.Row('pc', 'Per-class model', 'experiments/pc.py', (1.0,), '1.0',
                            reported_per_class='its worst digit is 1')
  monkeypatch.setattr(reproduce, 'ROWS', (ROW, per_class))
  write_archived(str(tmp_path), ROW, 0, 0.01)  # version 1: no confusion, no section
  for seed, confusion in enumerate(([[9, 1], [2, 8]], [[10, 0], [4, 6]])):
    record = results.build(status='ok', message='', config={}, params=10,
                           final={'test': {'error': 0.15, 'confusion': confusion}})
    path = reproduce.archived_path(str(tmp_path), per_class, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    results.write(os.path.dirname(path), record)
    os.replace(os.path.join(os.path.dirname(path), results.FILENAME), path)
  report = reproduce.format_report(reproduce.collect(str(tmp_path), 2), 2, 'm')
  section = report.split('## Per-class test accuracy')[1]
  assert 'Toy model' not in section
  assert 'Per-class model (`experiments/pc.py`), test split, over 2 seeds' in section
  assert '| mean | 95.00 | 70.00 |' in section  # digit 0: 90 and 100; digit 1: 80 and 60
  assert '| lowest | 90.00 | 60.00 |' in section and '| highest | 100.00 | 80.00 |' in section
  assert 'Hardest here: 1 (70.00%), 0 (95.00%). The tutorial: its worst digit is 1.' in section
