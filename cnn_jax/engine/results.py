"""results.json: the record of a finished or stopped run. This module holds its schema and
its one writer (called only by engine/run_record.py) and reads every version.

Schema version 2, the same for a single run, a member of a vmapped group, a diverged run and
an invalid sweep trial:

  schema_version      2
  status              'ok', 'pruned' (stopped early by a sweep's pruner), 'diverged' or
                      'invalid'
  message             why not ok ('' when ok)
  final               {split: {metric: value}}: the last evaluation, of 'test' and (when the
                      run has one) 'validation', with every eval metric of engine/metrics.py
                      (loss, error, accuracy: fractions; confusion: counts, true label by
                      predicted); {} unless status is 'ok' or 'pruned'
  history             one record per evaluation (each epoch end, and every
                      train.eval_every_steps when set): epoch, step, train_seconds, and
                      {metric: value} under 'train' (over the steps since the previous
                      evaluation) and under each split (scalar metrics)
  params              parameters of the model (null for an invalid trial)
  steps, epochs       how far it trained
  train_seconds       training time (compilation included; evaluation and checkpoints not),
                      summed over the processes that ran it
  first_step_seconds  the first call of the train step (compilation)
  wall_seconds        process time spent on this run, summed likewise
  num_examples        {split: images}
  executor            {'members': runs trained together, 'devices': devices used,
                       'steps_per_call': train steps per compiled call,
                       'layers': {'conv0': its implementation ('xla', or forward/input
                       gradient/kernel gradient when they differ), 'pool0': ..., ...}}
  environment         {'backend', 'device', 'jax_version'}
  ensemble            for a member of a vmapped group whose members trained to the end
                      together: {'members': their run directories' names, 'test':
                      {'error', 'accuracy', 'loss'} of the mean of their probabilities}
                      (engine/ensembles.py); absent otherwise
  config              the full config

Version 1 (written before 2026-11-23, no schema_version field; the archive in
docs/reproduction_results is of that version) kept the final figures at the top level
(test_error, test_loss, val_error, val_loss) and flat history records (train_loss,
test_error, ...); `read` returns it upgraded to version 2 (with 'upgraded_from': 1).
"""
from __future__ import annotations

import os
from typing import Any

from cnn_jax import atomic_files
from cnn_jax.errors import RunDirectoryError

FILENAME = 'results.json'
SCHEMA_VERSION = 2
STATUSES = ('ok', 'pruned', 'diverged', 'invalid')
WITH_FIGURES = ('ok', 'pruned')  # statuses whose record keeps its last evaluation


def build(*, status: str, message: str, config: dict, final: dict | None = None,
          history: list | None = None, params: int | None = None, steps: int = 0,
          epochs: float = 0.0, train_seconds: float = 0.0,
          first_step_seconds: float | None = None, wall_seconds: float = 0.0,
          num_examples: dict | None = None, executor: dict | None = None,
          environment: dict | None = None, ensemble: dict | None = None) -> dict[str, Any]:
  assert status in STATUSES, status
  return {**({'ensemble': ensemble} if ensemble else {}),
      'schema_version': SCHEMA_VERSION, 'status': status, 'message': message,
      'final': final if status in WITH_FIGURES and final else {}, 'history': history or [],
      'params': params, 'steps': steps, 'epochs': round(epochs, 4),
      'train_seconds': round(train_seconds, 3),
      'first_step_seconds': first_step_seconds and round(first_step_seconds, 3),
      'wall_seconds': round(wall_seconds, 3), 'num_examples': num_examples or {},
      'executor': executor or {}, 'environment': environment or {}, 'config': config,
  }


def write(workdir: str, record: dict[str, Any]) -> str:
  path = os.path.join(workdir, FILENAME)
  atomic_files.write_json(path, record, indent=2, sort_keys=True)  # never half a file
  return path


def read(workdir: str) -> dict[str, Any] | None:
  """The workdir's results.json in the current schema, or None when there is none."""
  return read_file(os.path.join(workdir, FILENAME))


def read_file(path: str) -> dict[str, Any] | None:
  if not os.path.exists(path):
    return None
  record = atomic_files.read_json(path)
  record = record if record.get('schema_version') == SCHEMA_VERSION else _upgrade_v1(record)
  if not isinstance(record.get('status'), str) or not isinstance(record.get('final', {}), dict):
    raise RunDirectoryError(f'{path} is damaged: it holds no status, so it is not the results '
                            'a run writes; restore it from a copy, or give the command another '
                            'directory')
  return record


def final_metric(record: dict[str, Any] | None, split: str, name: str):
  """A metric of the final evaluation, or None (not ok, no such split, no record)."""
  return ((record or {}).get('final') or {}).get(split, {}).get(name)


def upgrade_history_record(old: dict[str, Any]) -> dict[str, Any]:
  """A version-1 history record ('train_loss', 'test_error', ...) in version 2's form."""
  if 'train' in old:
    return old
  new = {k: old[k] for k in ('epoch', 'step', 'train_seconds') if k in old}
  for key, value in old.items():
    where, _, name = key.rpartition('_')
    if where in ('train', 'validation', 'test') and name in ('loss', 'error'):
      new.setdefault(where, {})[name] = value
  return new


def _upgrade_v1(old: dict[str, Any]) -> dict[str, Any]:
  final = {}
  for split, prefix in (('validation', 'val'), ('test', 'test')):
    if old.get(f'{prefix}_error') is not None:
      final[split] = {'error': old[f'{prefix}_error'], 'loss': old.get(f'{prefix}_loss')}
  top_level = ('test_error', 'test_loss', 'val_error', 'val_loss', 'history', 'backend',
               'device', 'jax_version')
  record = {k: v for k, v in old.items() if k not in top_level}
  record.update(schema_version=SCHEMA_VERSION, upgraded_from=1, final=final,
                history=[upgrade_history_record(h) for h in old.get('history', [])],
                environment={k: old[k] for k in ('backend', 'device', 'jax_version')
                             if k in old})
  return record
