"""A sweep's report: `<sweep dir>/report.md` with the sweep's table, one plot of test error
against each swept axis (seeds shown as spread), and a link to each trial's own report.

It reads the sweep's table, sweep.csv (sweeps/tables.py writes it; an archived sweep may
have nothing else), so it needs no trial directory; the trials whose directories hold a run
get their run report (run_report.py) written and linked.
"""
from __future__ import annotations

import ast
import csv
import os
import statistics
import time

from cnn_jax.engine import metrics
from cnn_jax.engine import run_record
from cnn_jax.errors import UserError
from cnn_jax.reports import pictures
from cnn_jax.reports import run_report
from cnn_jax.sweeps import tables
from cnn_jax.sweeps import trials as trials_lib

FILENAME = 'report.md'
TABLE = 'sweep.csv'
SEED = 'seed'
PLOT = 'test_error_by_axis.png'


def read_table(workdir: str) -> tuple[list[str], list[dict]]:
  """(swept axes, rows) of sweep.csv: the axes are the columns between 'trial' and 'status'."""
  with open(os.path.join(workdir, TABLE), newline='') as f:
    reader = csv.DictReader(f)
    columns = reader.fieldnames
    rows = list(reader)
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


def _percent(value: str) -> float | None:
  return 100 * float(value) if value not in ('', None) else None


def draw_error_by_axis(axes_names: list[str], rows: list[dict], title: str):
  """One panel per swept axis (the seed excepted): test error for each of its values, one
  line per combination of the other axes through the mean over seeds, bars from the lowest
  to the highest seed."""
  shown = [a for a in axes_names if a != SEED] or axes_names
  figure = pictures.new_figure(4.2 * len(shown) + 0.6, 3.8)
  panels = figure.subplots(1, len(shown), squeeze=False)[0]
  done = [r for r in rows if r['status'] == 'ok' and _percent(r['test_error']) is not None]
  for panel, axis_name in zip(panels, shown):
    in_declared_order = sorted(rows, key=lambda r: int(r['index']))  # the table is best first
    values = list(dict.fromkeys(r[axis_name] for r in in_declared_order))
    others = [a for a in shown if a != axis_name]
    series = {}
    for row in done:
      key = ', '.join(f'{a.rpartition(".")[2]}={row[a]}' for a in others)
      series.setdefault(key, {}).setdefault(row[axis_name], []).append(
          _percent(row['test_error']))
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
    panel.set_xticklabels(values, rotation=20, fontsize=8)
    panel.set_xlabel(axis_name)
    panel.set_ylabel('test error (%)')
    panel.grid(True, alpha=0.3)
    if any(series):
      panel.legend(fontsize=7)
  seeds = len({r[SEED] for r in rows}) if SEED in axes_names else 1
  figure.suptitle(f'{title}: test error by swept axis'
                  + (f' (mean of {seeds} seeds, bars from lowest to highest)'
                     if seeds > 1 else ''))
  return figure


def write(workdir: str, trial_reports: bool = True) -> str:
  """Writes `<workdir>/report.md` and its plot (and the trials' reports); returns its path."""
  workdir = os.path.abspath(workdir)
  if not os.path.exists(os.path.join(workdir, TABLE)):
    raise UserError(f'--workdir={workdir} holds no sweep ({TABLE} is missing)')
  started = time.time()
  axes_names, rows = read_table(workdir)
  name = os.path.basename(workdir)
  png, _, _ = pictures.render(draw_error_by_axis(axes_names, rows, name))
  with open(os.path.join(workdir, PLOT), 'wb') as f:
    f.write(png)
  lines = [f'# Sweep {name}', '', f'{len(rows)} trials over {", ".join(axes_names)}; '
           f'{sum(r["status"] == "ok" for r in rows)} finished.', '',
           f'![test error by swept axis]({PLOT})', '']
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
  lines += ['', f'_Written by `python -m cnn_jax.report` in {time.time() - started:.1f} s._']
  path = os.path.join(workdir, FILENAME)
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return path
