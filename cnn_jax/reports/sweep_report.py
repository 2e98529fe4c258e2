"""A sweep's report: `<sweep dir>/report.md` with the sweep's table, one plot of test error
against each swept axis of a grid (seeds shown as spread), a search's best configuration and
Optuna's pictures of its study (pictures/study_pictures.py), a population's best member, its
lineage and the population's trajectories (pictures/population_pictures.py), and a link to
each trial's own report.

It reads the sweep's table, sweep.csv (sweeps/tables.py writes it; an archived sweep may
have nothing else), so it needs no trial directory; the trials whose directories hold a run
get their run report (run_report.py) written and linked, and the study is read where it
is kept (`<sweep dir>/study.db`, or the --storage URL given).
"""
from __future__ import annotations

import ast
import os
import statistics
import time

from cnn_jax import atomic_files
from cnn_jax.engine import metrics
from cnn_jax.engine import run_record
from cnn_jax.errors import UserError
from cnn_jax.pictures import canvas
from cnn_jax.pictures import scales
from cnn_jax.reports import run_report
from cnn_jax.sweeps import tables
from cnn_jax.sweeps import trials as trials_lib

FILENAME = 'report.md'
TABLE = tables.CSV
SEED = 'seed'
PLOT = 'test_error_by_axis.png'


def read_table(workdir: str) -> tuple[list[str], list[dict]]:
  """(swept axes, rows) of sweep.csv: the axes are the columns between 'trial' and 'status'."""
  columns, rows = tables.read_csv(workdir)
  axes_names = columns[columns.index('trial') + 1:columns.index('status')]
  for row in rows:
    for name in axes_names:
      row[name] = _shown(row[name])
  return axes_names, rows


def _shown(cell: str) -> str:
  """A swept value as sweep.md shows it: "('max', 'max')" -> 'max-max'."""
  try:
    return trials_lib.short(ast.literal_eval(cell))
  except (ValueError, SyntaxError):
    return cell


def _fraction(value: str) -> float | None:
  return float(value) if value not in ('', None) else None


def draw_error_by_axis(axes_names: list[str], rows: list[dict], title: str):
  """One panel per swept axis (the seed excepted): test error for each of its values, one
  line per combination of the other axes through the mean over seeds, bars from the lowest
  to the highest seed."""
  shown = [a for a in axes_names if a != SEED] or axes_names
  # Room below each panel for its legend, one line a combination of the other axes.
  combinations = max(len({tuple(r[a] for a in shown if a != axis_name) for r in rows})
                     for axis_name in shown)
  figure = canvas.new_figure(4.2 * len(shown) + 0.6, 3.8 + 0.2 * combinations)
  panels = figure.subplots(1, len(shown), squeeze=False)[0]
  done = [r for r in rows if r['status'] == 'ok' and _fraction(r['test_error']) is not None]
  for panel, axis_name in zip(panels, shown):
    in_declared_order = sorted(rows, key=lambda r: int(r['index']))  # the table is best first
    values = list(dict.fromkeys(r[axis_name] for r in in_declared_order))
    others = [a for a in shown if a != axis_name]
    series = {}
    for row in done:
      key = ', '.join(f'{a.rpartition(".")[2]}={row[a]}' for a in others)
      series.setdefault(key, {}).setdefault(row[axis_name], []).append(
          _fraction(row['test_error']))
    for n, (label, by_value) in enumerate(sorted(series.items())):
      xs = [i for i, v in enumerate(values) if v in by_value]
      errors = [by_value[values[i]] for i in xs]
      means = [statistics.mean(e) for e in errors]
      offset = (n - (len(series) - 1) / 2) * 0.06  # side by side, not on top of each other
      panel.errorbar([x + offset for x in xs], means,
                     yerr=[[m - min(e) for m, e in zip(means, errors)],
                           [max(e) - m for m, e in zip(means, errors)]],
                     marker='o', capsize=3, label=label or None)
    panel.set_xticks(range(len(values)))
    panel.set_xticklabels(values, rotation=20, fontsize=canvas.SMALL)
    panel.set_xlabel(axis_name)
    panel.set_ylabel('test error')
    scales.value_axis(panel, [_fraction(r['test_error']) for r in done], percent=True)
    panel.grid(True, alpha=0.3)
    if any(series):
      # Below the panel: inside, at a readable size, it would hide the points.
      panel.legend(fontsize=canvas.SMALL, loc='upper center', bbox_to_anchor=(0.5, -0.22),
                   frameon=False)
  seeds = len({r[SEED] for r in rows}) if SEED in axes_names else 1
  figure.suptitle(f'{title}: test error by swept axis'
                  + (f' (mean of {seeds} seeds, bars from lowest to highest)'
                     if seeds > 1 else ''))
  return figure


def read_study(workdir: str, storage: str = ''):
  """The sweep's Optuna study, or None when it has none (an archived table, a sweep from
  before the studies)."""
  from cnn_jax.sweeps import study as study_lib  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import study_storage  # pylint: disable=g-import-not-at-top
  if not storage and not os.path.exists(os.path.join(workdir, study_storage.FILENAME)):
    return None
  import optuna  # pylint: disable=g-import-not-at-top
  url = study_storage.url_for(workdir, storage)
  try:
    return optuna.load_study(study_name=study_lib.study_name(workdir),
                             storage=study_storage.open_storage(url, 60))
  except KeyError:
    raise UserError(f'{study_storage.masked(url)} holds no study named '
                    f'{study_lib.study_name(workdir)!r}') from None


def search_section(workdir: str, study) -> list[str]:
  """The best configuration (sweep.md's first line), the trials' states, and Optuna's
  pictures of the study, drawn now."""
  from cnn_jax.pictures import study_pictures  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import study as study_lib  # pylint: disable=g-import-not-at-top
  lines = ['## The search', '']
  with open(os.path.join(workdir, 'sweep.md')) as f:
    first = f.readline().strip()
  if first.startswith('Best configuration'):
    lines += [first, '']
  settled = [t for t in study.get_trials(deepcopy=False) if not study_lib.superseded(t)]
  counts = {}
  for trial in settled:
    counts[study_lib.state_of(trial)] = counts.get(study_lib.state_of(trial), 0) + 1
  retried = sum(study_lib.superseded(t) for t in study.get_trials(deepcopy=False))
  lines += [f'{len(settled)} configurations: ' + ', '.join(
      f'{n} {state}' for state, n in sorted(counts.items()))
            + (f'; {retried} attempt(s) taken over after their worker stopped' if retried
               else '') + '.', '']
  for name in study_pictures.save(study, workdir, os.path.basename(workdir)):
    stem = os.path.splitext(name)[0]
    lines += [f'![{study_pictures.CAPTIONS[stem]}]({name})', '',
              f'_{study_pictures.CAPTIONS[stem]}._', '']
  return lines


def population_section(workdir: str, recorded: dict, rows: list[dict]) -> list[str]:
  """The best member (sweep.md's first line), whose weights it ended with, and the picture
  of the population's numbers and objective over the steps."""
  from cnn_jax.engine import results  # pylint: disable=g-import-not-at-top
  from cnn_jax.pictures import population_pictures  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import population_sweep  # pylint: disable=g-import-not-at-top
  lines = ['## The population', '']
  with open(os.path.join(workdir, 'sweep.md')) as f:
    first = f.readline().strip()
  if first.startswith('Best member'):
    lines += [first, '']
  steps = max([(results.read(os.path.join(workdir, r['trial'])) or {}).get('steps', 0)
               for r in rows] + [i['step'] for i in recorded['intervals']])
  lines += [f'{len(recorded["members"])} members ranked on {recorded["objective"]} every '
            f'{recorded["interval_steps"]} steps ({len(recorded["intervals"])} intervals); '
            f'the bottom took the state of a member from the top '
            f'{sum(s != k for i in recorded["intervals"] for k, s in enumerate(i["source"]))} '
            'times.', '']
  if rows and rows[0]['status'] == 'ok':
    best = int(rows[0]['index'])
    stretches = population_sweep.history(recorded, best)
    ends = [start for start, _, _ in stretches[1:]] + [steps]
    lines += [f'{recorded["members"][best]}\'s weights, traced back: ' + '; '.join(
        f'steps {start}-{end} trained by {recorded["members"][trainer]} ('
        + ', '.join(f'{p.split(".")[-1]} {v:.3g}' for p, v in values.items()) + ')'
        for (start, trainer, values), end in zip(stretches, ends)) + '. '
        f'`python launch.py --config={population_sweep.REPLAY}` trains that history alone.',
        '']
  png, _, _ = canvas.render(population_pictures.draw(recorded, steps, os.path.basename(workdir)))
  atomic_files.write_bytes(os.path.join(workdir, population_pictures.FILENAME), png)
  return lines + [f'![{population_pictures.CAPTION}]({population_pictures.FILENAME})', '',
                  f'_{population_pictures.CAPTION}._', '']


def write(workdir: str, trial_reports: bool = True, storage: str = '') -> str:
  """Writes `<workdir>/report.md` and its plots (and the trials' reports); returns its path."""
  workdir = os.path.abspath(workdir)
  if not os.path.exists(os.path.join(workdir, TABLE)):
    raise UserError(f'--workdir={workdir} holds no sweep ({TABLE} is missing)')
  started = time.time()
  axes_names, rows = read_table(workdir)
  name = os.path.basename(workdir)
  study = read_study(workdir, storage)
  is_search = study is not None and study.user_attrs.get('kind') == 'search'
  population = os.path.join(workdir, 'population.json')
  what = 'members exploring' if os.path.exists(population) else 'trials over'
  lines = [f'# Sweep {name}', '', f'{len(rows)} {what} {", ".join(axes_names)}; '
           f'{sum(r["status"] == "ok" for r in rows)} finished.', '']
  if is_search:  # sampled values are continuous: Optuna's slice plot stands for the axes
    lines += search_section(workdir, study)
  elif os.path.exists(population):  # (its columns are where the members ended)
    lines += population_section(workdir, atomic_files.read_json(population), rows)
  else:
    png, _, _ = canvas.render(draw_error_by_axis(axes_names, rows, name))
    with open(os.path.join(workdir, PLOT), 'wb') as f:
      f.write(png)
    lines += [f'![test error by swept axis]({PLOT})', '']
  figures = tables.metric_columns()  # the sweep table's metric columns, as sweep.md has them
  header = ['#', *axes_names, 'status', *(c.replace('_', ' ') for c, _, _ in figures),
            'params', 'seconds', 'report']
  lines += ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
  for row in rows:
    trial_dir = os.path.join(workdir, row['trial'])
    link = '-'
    if trial_reports and os.path.exists(os.path.join(trial_dir, run_record.CONFIG_FILENAME)):
      try:
        run_report.write(trial_dir)
        link = f'[report]({row["trial"]}/{run_report.FILENAME})'
      except UserError as error:  # one damaged trial does not cost the sweep its report
        link = f'no report: {" ".join(str(error).split())}'
    seconds = f'{float(row["seconds"]):.0f}' if row['seconds'] else '-'
    lines.append('| ' + ' | '.join([row['index'], *(row[a] for a in axes_names), row['status'],
                                    *(metrics.show(name, float(row[c]) if row[c] else None)
                                      for c, _, name in figures),
                                    f'{int(row["params"]):,}' if row['params'] else '-',
                                    seconds, link]) + ' |')
  written = []
  if os.path.exists(os.path.join(workdir, 'sweep.md')):  # sweeps/tables.py's ensemble table
    with open(os.path.join(workdir, 'sweep.md')) as f:
      written = f.read().split('\n')
  marker = [i for i, line in enumerate(written) if line.startswith(tables.ENSEMBLES_TITLE)]
  if marker:
    lines += ['', '## Ensembles', ''] + '\n'.join(written[marker[0]:]).strip().split('\n')
  lines += ['', f'_Written by `python -m cnn_jax.report` in {time.time() - started:.1f} s._']
  path = os.path.join(workdir, FILENAME)
  atomic_files.write_text(path, '\n'.join(lines) + '\n')
  return path
