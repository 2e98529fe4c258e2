"""What a sweep shows: sweep.csv and sweep.md (runs best first; a search's best
configuration with its validation and test error) and the HParams dashboard's experiment.
Built from the study (each trial's number and state) and the run directories (their
results.json); columns and metrics come from engine/metrics.py."""
from __future__ import annotations

import csv
import io
import os
from typing import Any, Sequence

from cnn_jax import atomic_files
from cnn_jax.engine import ensembles
from cnn_jax.engine import events
from cnn_jax.engine import metrics
from cnn_jax.engine import results
from cnn_jax.errors import RunDirectoryError
from cnn_jax.sweeps import trials as trials_lib

HPARAMS_MARKER = 'hparams_config.written'
ENSEMBLES_TITLE = 'Ensembles of the seeds (the mean of their test probabilities):'


def metric_columns() -> list[tuple[str, str, str]]:
  """(column, split, metric) of the tables: e.g. ('val_error', 'validation', 'error')."""
  short = {'validation': 'val', 'test': 'test'}
  return [(f'{short[split]}_{name}', split, name) for split in metrics.RANK_SPLITS
          for name in metrics.TABLE_METRICS]


def table_rows(workdir: str, runs: Sequence, states: dict[str, tuple[int, str]] | None = None,
               objective: str = '', direction: str = 'minimize') -> list[dict[str, Any]]:
  """One row per run, best first: finished runs ('ok') by `objective` ('split/metric'; by
  default the first table metric on validation, on test when there is none), then pruned
  ones by their last figures, then the rest in order. `states`: {run name: (study trial
  number, study state)}."""
  states = states or {}
  rows = []
  for position, run in enumerate(runs):
    done = results.read(os.path.join(workdir, run.name)) or {}
    number, state = states.get(run.name, (run.index, ''))
    # Without a local record, the study says: a run trained on another machine (its run
    # directory is there) shows the study's state.
    status = done.get('status') or {'running': 'running', 'failed': 'failed',
                                    'complete': 'complete elsewhere',
                                    'pruned': 'pruned elsewhere'}.get(state, 'pending')
    row = {'index': run.index, 'trial': run.name, 'study_trial': number, 'state': state,
           **run.overrides, 'status': status, 'params': done.get('params'),
           'seconds': done.get('wall_seconds'), 'message': done.get('message', ''),
           '_position': position}
    for column, split, name in metric_columns():
      row[column] = results.final_metric(done, split, name)
    if objective:
      split, _, name = objective.partition('/')
      row['_objective'] = results.final_metric(done, split, name)
    rows.append(row)
  sign = -1.0 if direction == 'maximize' else 1.0

  def rank(row):
    ranked = ([row['_objective']] if objective else
              [row[c] for c, _, _ in metric_columns() if row[c] is not None])
    value = sign * ranked[0] if ranked and ranked[0] is not None else 0.0
    group = {'ok': 0, 'pruned': 1}.get(row['status'], 2)
    return (group, value if group < 2 else 0.0, row['_position'])
  rows = sorted(rows, key=rank)
  for row in rows:
    row.pop('_position')
    row.pop('_objective', None)
  return rows


CSV = 'sweep.csv'
UNFINISHED = ('pending', 'running', '')
REQUIRED_COLUMNS = ('index', 'trial', 'status')


def read_csv(workdir: str) -> tuple[list[str], list[dict[str, str]]]:
  """(columns, rows) of the sweep's sweep.csv; a damaged one is one line naming it."""
  path = os.path.join(workdir, CSV)
  try:
    with open(path, newline='') as f:
      reader = csv.DictReader(f)
      rows = list(reader)
      columns = list(reader.fieldnames or [])
  except (csv.Error, UnicodeDecodeError) as error:
    columns, rows = [], error
  if isinstance(rows, Exception) or not set(REQUIRED_COLUMNS) <= set(columns) or any(
      None in row or None in row.values() for row in rows):  # a row of too many or few cells
    raise RunDirectoryError(f'{path} is damaged (not the table launch.py writes: the columns '
                            f'{", ".join(REQUIRED_COLUMNS)} and a cell per column); restore '
                            'it, or remove it and run the sweep\'s command again to rewrite it '
                            'from the study and the runs')
  return columns, rows


def _finished(rows) -> set[str]:
  return {row['trial'] for row in rows if row['status'] not in UNFINISHED}


def write_tables(workdir: str, trials: Sequence, rows: list[dict[str, Any]],
                 best_line: str = '') -> None:
  keys = list(dict.fromkeys(k for t in trials for k in t.overrides))
  figures = metric_columns()
  # The swept keys stand between 'trial' and 'status' (reports/sweep_report.py reads them so).
  columns = ['index', 'trial', *keys, 'status', 'study_trial', 'state',
             *(c for c, _, _ in figures), 'params', 'seconds', 'message']
  text = io.StringIO(newline='')
  writer = csv.DictWriter(text, columns, extrasaction='ignore')
  writer.writeheader()
  writer.writerows(rows)  # error rates as fractions, like results.json
  path = os.path.join(workdir, CSV)
  if os.path.exists(path):  # a study that lost trials (another --storage?) must not wipe them
    atomic_files.refuse_losing(
        path, _finished(read_csv(workdir)[1]), _finished(rows),
        'the study and runs found now lack them (is --storage the one the sweep ran with?)',
        'move it away first')
  atomic_files.write_text(path, text.getvalue())
  header = ['#', *keys, 'status', *(c.replace('_', ' ') for c, _, _ in figures), 'params',
            'seconds']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
  for row in rows:
    cells = [str(row['index']), *(trials_lib.short(row.get(k, '')) for k in keys),
             row['status'], *(metrics.show(name, row[c]) for c, _, name in figures),
             f'{row["params"]:,}' if row['params'] else '-',
             f'{row["seconds"]:.0f}' if row['seconds'] else '-']
    lines.append('| ' + ' | '.join(cells) + ' |')
  notes = [f'- trial {r["index"]} ({r["status"]}): {r["message"]}' for r in rows
           if r['status'] in ('invalid', 'diverged', 'pruned')]
  head = [best_line, ''] if best_line else []
  ensemble = ensemble_lines(workdir, trials)
  atomic_files.write_text(os.path.join(workdir, 'sweep.md'), '\n'.join(
      head + lines + ([''] + notes if notes else []) + ([''] + ensemble if ensemble else []))
                          + '\n')


def ensemble_lines(workdir: str, trials: Sequence) -> list[str]:
  """A table of each configuration swept over several seeds: its seeds' test errors and
  the error of their ensemble (engine/ensembles.py: the mean of their probabilities, from
  the predictions each finished run kept). Empty without such configurations. A trial that
  repeats another's configuration and seed (a search may queue one twice) is left out: it
  is the same model again, not another member."""
  configurations: dict[str, dict] = {}
  for trial in trials:
    others = {k: v for k, v in trial.overrides.items() if k != 'seed'}
    configurations.setdefault(repr(sorted(others.items())), {}).setdefault(
        trial.config.seed, trial)
  lines = []
  for by_seed in configurations.values():
    members = list(by_seed.values())
    workdirs = [os.path.join(workdir, t.name) for t in members]
    figures = ensembles.of_runs(workdirs)
    if len(members) < 2 or figures is None:
      continue
    errors = [results.final_metric(results.read(w), 'test', metrics.ERROR) for w in workdirs]
    shown = ', '.join(f'{t.config.seed}: {metrics.show(metrics.ERROR, e)}'
                      for t, e in zip(members, errors))
    described = ', '.join(f'{k.split(".")[-1]}={trials_lib.short(v)}'
                          for k, v in members[0].overrides.items() if k != 'seed') or 'base'
    lines.append(f'| {described} | {shown} | {metrics.show(metrics.ERROR, figures["error"])} |')
  if not lines:
    return []
  return ([ENSEMBLES_TITLE, '',
           '| configuration | test error by seed | ensemble test error |',
           '| --- | --- | --- |'] + lines)


def write_hparams_config(workdir: str, sweep) -> None:
  """The HParams dashboard's experiment: the swept keys as hparams (a grid's values, a
  search's choices or ranges), the declared metrics. Written once per sweep directory; each
  run writes its own values."""
  from tensorboard.plugins.hparams import summary_v2 as hparams_summary  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import hyper  # pylint: disable=g-import-not-at-top
  marker = os.path.join(workdir, HPARAMS_MARKER)
  if os.path.exists(marker):
    return
  domains: dict[str, Any] = {}
  if sweep.grid is not None:
    values: dict[str, set] = {}
    for trial in sweep.grid:
      for key, value in trial.overrides.items():
        values.setdefault(key, set()).add(events.hparam_value(value))
    domains = {k: sorted(v) for k, v in values.items()}
  else:
    for key, d in sweep.search.space.items():
      if isinstance(d, hyper.Choice):
        domains[key] = sorted({events.hparam_value(v) for v in d.values})
      elif isinstance(d, hyper.Int):
        domains[key] = hparams_summary.IntInterval(d.low, d.high)
      else:
        domains[key] = hparams_summary.RealInterval(float(d.low), float(d.high))
    if len(sweep.search.seeds) > 1:
      domains['seed'] = sorted(sweep.search.seeds)
  writer = events.EventWriter(workdir)
  writer.write_hparams_config(domains, metrics.hparams_tags())
  writer.close()
  atomic_files.write_text(marker, '')


def write(workdir: str, sweep, url: str) -> list[dict[str, Any]]:
  """sweep.csv and sweep.md from the study and the runs; returns the rows. `url` '' (a
  grid's array job): the study if the sweep directory has one, else the runs alone."""
  from cnn_jax.sweeps import declaration  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import study as study_lib  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import study_storage  # pylint: disable=g-import-not-at-top
  if not url and os.path.exists(os.path.join(workdir, study_storage.FILENAME)):
    url = study_storage.url_for(workdir)
  study = declaration.open_study(sweep, workdir, url) if url else None
  states: dict[str, tuple[int, str]] = {}
  if sweep.grid is not None:
    runs = list(sweep.grid)
    for frozen in study.get_trials(deepcopy=False) if study else []:
      index = frozen.user_attrs.get(study_lib.GRID_INDEX_ATTR)
      if index is not None and not study_lib.superseded(frozen):
        states[sweep.grid[index].name] = (frozen.number, study_lib.state_of(frozen))
  else:
    runs = []
    for frozen in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
      if study_lib.superseded(frozen) or set(frozen.params) != set(sweep.search.space):
        continue
      for run in declaration.runs_of(sweep, study_lib.run_number(frozen), frozen.params):
        runs.append(run)
        states[run.name] = (frozen.number, study_lib.state_of(frozen))
  rows = table_rows(workdir, runs, states, sweep.objective if sweep.search else '',
                    sweep.direction)
  write_tables(workdir, runs, rows, best_line(sweep, study) if sweep.search else '')
  return rows


def best_line(sweep, study) -> str:
  """The best complete configuration: its objective (the mean over its seeds, as the study
  holds it) and, apart, its test error."""
  try:
    best = study.best_trial
  except ValueError:  # no complete trial yet
    return ''
  name = sweep.objective.partition('/')[2]
  test_error = best.user_attrs.get('test_error')
  return (f'Best configuration: study trial {best.number}, {sweep.objective} '
          f'{metrics.show(name, best.value)} (the objective; the mean over its '
          f'{len(sweep.search.seeds)} seed(s)); test error '
          f'{metrics.show(metrics.ERROR, test_error)}, reported apart (not used to choose).')
