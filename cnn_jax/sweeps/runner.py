"""Running a sweep, a grid or a search, into a sweep directory:

    declaration.load (grid or search, checked) -> declaration.start (the study; a grid
    queued in it) -> workers (worker.py: here, in local processes, or on other machines)
    -> tables (tables.py: sweep.csv, sweep.md, HParams, built from the study and the runs)

Each run directory (`<sweep dir>/<number>-<name>/`) is exactly what a single run writes
(events, hparams, checkpoint, pictures, results.json), so re-running the command repeats no
finished trial and resumes an interrupted one from its checkpoint.
"""
from __future__ import annotations

from typing import Any

from absl import logging
import ml_collections

from cnn_jax import atomic_files
from cnn_jax import console
from cnn_jax.config import files
from cnn_jax.errors import ConfigError
from cnn_jax.sweeps import declaration
from cnn_jax.sweeps import executors
from cnn_jax.sweeps import process_pool
from cnn_jax.sweeps import tables


def run(experiment: str, workdir: str, trial_index: int | None = None,
        base: ml_collections.ConfigDict | None = None, storage: str = '',
        workers: int = 1) -> list[dict[str, Any]]:
  """Runs the sweep's unfinished trials with `workers` workers (0: one per GPU, else per CPU
  core, process_pool.default_count; 1: in this process, or, over several processes
  (engine/distributed.py), all of them as one worker), or only grid trial `trial_index` (for
  array jobs); returns the table rows (process 0's; the others return none). Called from
  plain Python, it prints its progress to stderr."""
  with console.progress_visible():
    sweep = declaration.load(experiment, base)
    if trial_index is not None:  # refused before anything is written
      _grid_trial(sweep, trial_index)
    if sweep.pbt is not None:
      return _population(sweep, workdir, storage, workers)
    from cnn_jax.sweeps import study_storage  # pylint: disable=g-import-not-at-top
    url = study_storage.url_for(workdir, storage)
    from cnn_jax.engine import distributed  # pylint: disable=g-import-not-at-top
    if not distributed.is_writer():  # of a distributed worker: process 0 keeps the study
      if trial_index is not None:    # and the tables (orders.follow)
        _run_one(sweep, workdir, trial_index)
      else:
        from cnn_jax.sweeps import worker  # pylint: disable=g-import-not-at-top
        worker.work(sweep, workdir, url)
      return []
    # The sweep was checked (declaration.load): only now is anything written.
    atomic_files.writable_directory(workdir, '--workdir')
    files.record_origin(workdir, experiment)  # for cnn_jax.report's config differences
    tables.write_hparams_config(workdir, sweep)
    if trial_index is not None:  # an array job: no study (SQLite on NFS is no place for one)
      _run_one(sweep, workdir, trial_index)
      return tables.write(workdir, sweep, url if storage else '')
    study = declaration.start(sweep, workdir, url)
    count = workers if workers > 0 else process_pool.default_count()
    logging.info('Sweep %s (%s) in %s, study %r in %s: %d worker(s) here', experiment,
                 sweep.kind, workdir, study.study_name, study_storage.masked(url), count)
    if count == 1:
      from cnn_jax.sweeps import worker  # pylint: disable=g-import-not-at-top
      worker.work(sweep, workdir, url)
    else:
      codes = process_pool.run_workers(
          _worker_main, lambda i: (experiment, sweep.base, workdir, url, i), count)
      for i, code in enumerate(codes):
        if code:
          logging.error('worker %d ended with %s; its trial goes to the next worker or '
                        'command', i, f'signal {-code}' if code < 0 else f'status {code}')
    return tables.write(workdir, sweep, url)


def _worker_main(experiment, base, workdir, url, index) -> None:
  """A worker process: the same sweep, read again from its file, and the work loop."""
  # (A spawned worker inherits LD_PRELOAD, and so tcmalloc, from launch.py's process.)
  from cnn_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import worker  # pylint: disable=g-import-not-at-top
  try:
    worker.work(declaration.load(experiment, base), workdir, url, index)
  except UserError as error:  # one line, as the command line shows its own
    logging.error('worker %d: %s', index, ' '.join(str(error).split()))
    raise SystemExit(2) from None


def _run_one(sweep, workdir: str, trial_index: int) -> None:
  """A grid trial on its own, outside the study; a worker that later claims it from the
  study finds it finished and only settles it."""
  trial = _grid_trial(sweep, trial_index)
  # (a finished one: skipped; declaration.load checked the trial's config)
  executors.run_alone(trial, executors.run_dir(workdir, trial), checked=True)


def _population(sweep, workdir: str, storage: str, workers: int) -> list[dict[str, Any]]:
  """A population trains as one program in this command (over its processes, when it is
  distributed): no study, no workers."""
  if storage or workers != 1:
    given = f'--storage={storage}' if storage else f'--workers={workers}'
    raise ConfigError(f'{given}: a population (h.pbt) trains as one program, without a study '
                      'or workers; leave the flag out (over several machines, run it '
                      'with --distributed: docs/SWEEPS.md)')
  from cnn_jax.sweeps import population_sweep  # pylint: disable=g-import-not-at-top
  return population_sweep.run(sweep, workdir)


def _grid_trial(sweep, trial_index: int):
  if sweep.grid is None:
    raise ConfigError('--trial=N runs one trial of a grid; a search or a population has no '
                      'trials to run apart: run the sweep (--sweep) instead')
  if not 0 <= trial_index < len(sweep.grid):
    raise ConfigError(f'--trial={trial_index}: the sweep has trials 0 to {len(sweep.grid) - 1}')
  return sweep.grid[trial_index]
