"""A run's report: `<workdir>/report.md` with its pictures beside it, from what the run left
(config.json, results.json, the checkpoint), without retraining.

What the report holds: the run's status and what is missing (no results: unfinished; no
checkpoint: no parameters to draw from); the config fields that differ from the experiment's
defaults (the experiment launch.py recorded, else experiments/default.py); the model summary
with each layer's share of the parameters; the final figures; each evaluated split's
per-class accuracy and confusion matrix; and the pictures, drawn again from the checkpoint
(run_pictures.end_figures), or, without one, those the run drew itself.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

from cnn_jax import atomic_files
from cnn_jax import trained
from cnn_jax.config import files
from cnn_jax.config import paths
from cnn_jax.engine import checkpoint
from cnn_jax.engine import metrics
from cnn_jax.engine import results
from cnn_jax.engine import run_record
from cnn_jax.errors import DatasetNotFoundError
from cnn_jax.errors import UserError
from cnn_jax.model import cnn
from cnn_jax.model import summary
from cnn_jax.pictures import canvas
from cnn_jax.pictures import run_pictures

FILENAME = 'report.md'
DEFAULT_EXPERIMENT = 'experiments/default.py'


def _experiment_defaults(workdir: str) -> tuple[str, dict | None]:
  """(the experiment spec, its flattened default config, or None if its file is not found)."""
  spec = files.recorded_origin(workdir) or DEFAULT_EXPERIMENT
  path, _, arg = spec.partition(':')
  for candidate in (path, os.path.join(files.REPO_ROOT, path)):
    if os.path.exists(candidate):
      config = files.load_config(f'{candidate}:{arg}' if arg else candidate)
      return spec, paths.flatten(json.loads(config.to_json()))
  return spec, None


def config_differences(workdir: str, config_json: dict) -> tuple[str, list[tuple] | None]:
  """(experiment, [(field, default, value)]) for the fields that differ from its defaults;
  None instead of the list when the experiment file is not found. A config.json written
  before a field existed ran with its default (files.with_defaults); one a field has since
  left is not compared on it."""
  spec, defaults = _experiment_defaults(workdir)
  if defaults is None:
    return spec, None
  flat = paths.flatten(files.with_defaults(config_json))
  return spec, [(key, defaults[key], flat.get(key, '(absent)'))
                for key in sorted(defaults) if defaults[key] != flat.get(key)]


def _summary_lines(run) -> list[str]:
  model = cnn.build_model(run.config.model)
  rows = summary.model_summary(model, run.params, run.image_shape, run.model_state)
  total = sum(r.params for r in rows)
  lines = ['| layer | output shape | parameters | share |', '| --- | --- | --- | --- |']
  for row in rows:
    shape = '(' + ', '.join('None' if d is None else str(d) for d in row.output_shape) + ')'
    share = f'{100 * row.params / total:.1f}%' if row.params else ''
    lines.append(f'| {row.name} | {shape} | {row.params:,} | {share} |')
  lines.append(f'| **total** | | **{total:,}** | 100% |')
  return lines


def _final_lines(record: dict[str, Any]) -> list[str]:
  lines = ['| split | ' + ' | '.join(m.name for m in metrics.of_phase(metrics.EVAL)
                                      if m.scalar) + ' |',
           '| --- ' * (1 + sum(m.scalar for m in metrics.of_phase(metrics.EVAL))) + '|']
  for split, values in record['final'].items():
    lines.append(f'| {split} | ' + ' | '.join(
        metrics.show(m.name, values.get(m.name)) for m in metrics.of_phase(metrics.EVAL)
        if m.scalar) + ' |')
  layers = record.get('executor', {}).get('layers') or {}
  environment = record.get('environment', {})
  lines += ['', f'{record["steps"]:,} steps ({record["epochs"]:g} epochs), '
            f'{record["train_seconds"]:.1f} s of training, {record["params"]:,} parameters, '
            f'on {environment.get("device", "?")} (backend {environment.get("backend", "?")}, '
            f'jax {environment.get("jax_version", "?")}); layer implementations: '
            + (', '.join(f'{k} {v}' for k, v in layers.items()) or 'not recorded') + '.']
  return lines


def _draw_from_checkpoint(run, record, directory: str) -> list[str]:
  """Draws every picture from the checkpoint's parameters into `directory`; their names."""
  from cnn_jax.data import datasets  # pylint: disable=g-import-not-at-top  (reads data)
  splits = datasets.load_splits(run.config.data)
  history = (record or {}).get('history', [])
  final = (record or {}).get('final', {})
  title = run_pictures.title_of(run.config, run.workdir, run.step)
  figures = run_pictures.end_figures(run, splits.test, history, final, title, splits.train)
  run_pictures.save(directory, {name: canvas.render(f) for name, f in figures.items()})
  return list(figures)


def write(workdir: str) -> str:
  """Writes `<workdir>/report.md` (and its pictures); returns its path."""
  workdir = os.path.abspath(workdir)
  config_path = os.path.join(workdir, run_record.CONFIG_FILENAME)
  if not os.path.exists(config_path):
    raise UserError(f'--workdir={workdir} holds no run ({run_record.CONFIG_FILENAME} is '
                    'missing); give a directory launch.py trained into')
  started = time.time()
  config_json = json.loads(trained.read_config(workdir).to_json())  # damaged: one line
  record = results.read(workdir)
  spec, differences = config_differences(workdir, config_json)  # (before the checkpoint loads:
  name = config_json['model']['name']                            # a damaged file fails fast)
  lines = [f'# {name}: {os.path.basename(workdir)}', '']

  missing = []
  if record is None:
    step = checkpoint.saved_step(workdir)
    missing.append('results.json: the run has not finished'
                   + (f' (its checkpoint is at step {step:,})' if step is not None
                      else ' and has no checkpoint'))
  elif record['status'] != 'ok':
    missing.append(f'final figures: the run is {record["status"]}: {record["message"]}')
  run = None
  if os.path.exists(checkpoint.path_in(workdir)):
    run = trained.load(workdir)
  else:
    every = files.with_defaults(config_json)['train']['checkpoint_every_epochs']
    ended = {'diverged': 'diverged', 'pruned': 'was pruned'}.get(
        record and record['status'], 'ended')
    why = ('train.checkpoint_every_epochs=0' if not every
           else f'the run {ended} before its first' if record else 'none written yet')
    missing.append(f'the checkpoint ({why}): no model summary, and only the pictures the run '
                   'drew itself')
  status = record['status'] if record else 'unfinished'
  status_line = len(lines)
  lines.append(f'Status: **{status}**.' + (' Missing: ' + '; '.join(missing) + '.'
                                           if missing else ''))

  lines += ['', f'## Config: what differs from `{spec}`', '']
  if differences is None:
    lines.append(f'Not computed: the experiment file `{spec}` was not found (run the report '
                 'from the repository root).')
  elif differences:
    lines += ['| field | default | this run |', '| --- | --- | --- |']
    lines += [f'| {k} | {d} | {v} |' for k, d, v in differences]
  else:
    lines.append('Nothing: the experiment as it is.')

  if run is not None:
    lines += ['', '## Model', ''] + _summary_lines(run)
  if record and record['status'] == 'ok':
    lines += ['', '## Final figures', ''] + _final_lines(record)
    for split, values in record['final'].items():
      if 'confusion' in values:
        lines += ['', f'### Per-class accuracy and confusion matrix ({split})', '',
                  metrics.confusion_markdown(values['confusion'])]

  directory = os.path.join(workdir, run_pictures.DIRECTORY)
  drawn = []
  if run is not None and status == 'ok':
    try:
      drawn = _draw_from_checkpoint(run, record, directory)
    except DatasetNotFoundError as error:  # the run's own pictures are still worth a report
      lines[status_line] += f' Pictures not drawn again from the checkpoint: {error}'
  available = sorted(p[:-4] for p in os.listdir(directory)
                     if p.endswith('.png')) if os.path.isdir(directory) else []
  lines += ['', '## Pictures', '']
  if not available:
    lines.append('None: the run drew none and there is no finished checkpoint to draw from.')
  order = list(run_pictures.CAPTIONS)
  for picture in sorted(available, key=lambda p: (order.index(p) if p in order
                                                  else len(order), p)):
    caption = run_pictures.CAPTIONS.get(picture) or picture.replace('_', ' ').capitalize()
    lines += [f'### {caption}', '',
              f'![{caption}]({run_pictures.DIRECTORY}/{picture}.png)', '']
  lines.append(f'_Written by `python -m cnn_jax.report` in {time.time() - started:.1f} s'
               f'{" (pictures drawn from the checkpoint)" if drawn else ""}._')
  path = os.path.join(workdir, FILENAME)
  atomic_files.write_text(path, '\n'.join(lines) + '\n')
  return path

