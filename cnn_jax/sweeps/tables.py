"""What a sweep shows: sweep.csv and sweep.md (trials best first) and the HParams
dashboard's experiment. Columns and metrics come from engine/metrics.py."""
from __future__ import annotations

import csv
import os
from typing import Any, Sequence

from cnn_jax.engine import events
from cnn_jax.engine import metrics
from cnn_jax.engine import results
from cnn_jax.sweeps import trials as trials_lib

HPARAMS_MARKER = 'hparams_config.written'


def metric_columns() -> list[tuple[str, str, str]]:
  """(column, split, metric) of the tables: e.g. ('val_error', 'validation', 'error')."""
  short = {'validation': 'val', 'test': 'test'}
  return [(f'{short[split]}_{name}', split, name) for split in metrics.RANK_SPLITS
          for name in metrics.TABLE_METRICS]


def table_rows(workdir: str, trials: Sequence) -> list[dict[str, Any]]:
  """One row per trial, best first: finished 'ok' trials by the first table metric on the
  validation split (on test when there is none), then the rest in trial order."""
  rows = []
  for trial in trials:
    done = results.read(os.path.join(workdir, trial.name)) or {}
    row = {'index': trial.index, 'trial': trial.name, **trial.overrides,
           'status': done.get('status', 'pending'), 'params': done.get('params'),
           'seconds': done.get('wall_seconds'), 'message': done.get('message', '')}
    for column, split, name in metric_columns():
      row[column] = results.final_metric(done, split, name)
    rows.append(row)

  def rank(row):
    if row['status'] != 'ok':
      return (1, 0.0, row['index'])
    ranked = [row[c] for c, _, _ in metric_columns() if row[c] is not None]
    return (0, ranked[0] if ranked else 0.0, row['index'])
  return sorted(rows, key=rank)


def write_tables(workdir: str, trials: Sequence, rows: list[dict[str, Any]]) -> None:
  keys = list(dict.fromkeys(k for t in trials for k in t.overrides))
  figures = metric_columns()
  columns = ['index', 'trial', *keys, 'status', *(c for c, _, _ in figures), 'params',
             'seconds', 'message']
  with open(os.path.join(workdir, 'sweep.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, columns, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)  # error rates as fractions, like results.json
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
           if r['status'] in ('invalid', 'diverged')]
  with open(os.path.join(workdir, 'sweep.md'), 'w') as f:
    f.write('\n'.join(lines + ([''] + notes if notes else [])) + '\n')


def write_hparams_config(workdir: str, trials: Sequence) -> None:
  """The HParams dashboard's experiment: the swept keys as hparams, the declared metrics.
  Written once per sweep directory; each trial's run writes its own values."""
  marker = os.path.join(workdir, HPARAMS_MARKER)
  if os.path.exists(marker):
    return
  domains: dict[str, set] = {}
  for trial in trials:
    for key, value in trial.overrides.items():
      domains.setdefault(key, set()).add(events.hparam_value(value))
  writer = events.EventWriter(workdir)
  writer.write_hparams_config({k: sorted(v) for k, v in domains.items()},
                              metrics.hparams_tags())
  writer.close()
  open(marker, 'w').close()
