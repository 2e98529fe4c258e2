"""A sweep as declared by its experiment file, checked, and the study that runs it.

A grid (a list of trials, sweeps/hyper.py) is queued in the study once, in its order, every
trial with its overrides as Optuna params (for Optuna's pictures and the dashboard) and its
position (user attr 'grid_index'), so a grid runs through the same workers as a search and
over as many machines. A search (h.search) is checked by sweeps/search.py; its trials come
from the sampler. A population (h.pbt) needs no study: sweeps/population_sweep.py trains it.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import zlib
from typing import Any

import ml_collections
import numpy as np

from cnn_jax.config import validation
from cnn_jax.errors import ConfigError
from cnn_jax.sweeps import hyper
from cnn_jax.sweeps import pbt as pbt_lib
from cnn_jax.sweeps import search as search_lib
from cnn_jax.sweeps import trials as trials_lib


@dataclasses.dataclass
class Sweep:
  experiment: str                       # 'experiments/pool.py:sweep=search'
  base: ml_collections.ConfigDict       # with the command line's overrides
  grid: list[trials_lib.Trial] | None = None
  search: hyper.Search | None = None
  pbt: hyper.PBT | None = None          # checked, its direction filled in

  @property
  def kind(self) -> str:
    return 'grid' if self.grid is not None else 'pbt' if self.pbt is not None else 'search'

  @property
  def objective(self) -> str:
    """'<split>/<metric>' the study records: a search's declared one; a grid's ranking
    (the tables rank on validation when there is a split for it)."""
    if self.search is not None:
      return self.search.objective
    return 'validation/error' if self.base.data.validation != 'none' else 'test/error'

  @property
  def declared(self) -> str:
    """The declaration as text, part of the study's identity (study.sweep_digest)."""
    if self.search is not None:
      return repr(self.search)
    return repr([trial.overrides for trial in self.grid])

  @property
  def direction(self) -> str:
    return self.search.direction if self.search is not None else 'minimize'


def load(experiment: str, base: ml_collections.ConfigDict | None = None) -> Sweep:
  """The experiment's sweep, checked before anything runs: every trial of a grid, every
  value of a search's space (its choices, its ranges' ends), each validated as a single
  run's config is; a ConfigError line names the trial or path, the field and what it
  allows."""
  declared, base = trials_lib.read_declaration(experiment, base)
  validation.validate_sweep(base.sweep)
  if isinstance(declared, hyper.Search):
    return Sweep(experiment, base, search=search_lib.check(declared, base, experiment))
  if isinstance(declared, hyper.PBT):
    return Sweep(experiment, base, pbt=pbt_lib.check(declared, base, experiment))
  if not isinstance(declared, list):
    raise ConfigError(f'{experiment}: get_sweep must return a list of trials (h.product, '
                      f'h.sweep, ...), h.search(...) or h.pbt(...), not '
                      f'{type(declared).__name__}')
  return Sweep(experiment, base, grid=trials_lib.grid_trials(experiment, declared, base))


def grid_params(trial: trials_lib.Trial) -> dict[str, Any]:
  return {key: search_lib.encode(value) for key, value in trial.overrides.items()}


def distributions(sweep: Sweep, trial) -> dict[str, Any]:
  """{path: optuna distribution} a study trial suggests: the search's space, or for a grid
  trial the values its keys take across the grid."""
  import optuna  # pylint: disable=g-import-not-at-top
  if sweep.search is not None:
    return search_lib.distributions(sweep.search)
  from cnn_jax.sweeps import study as study_lib  # pylint: disable=g-import-not-at-top
  index = trial.user_attrs[study_lib.GRID_INDEX_ATTR]
  values: dict[str, list] = {}
  for other in sweep.grid:
    for key, value in grid_params(other).items():
      if value not in values.setdefault(key, []):
        values[key].append(value)
  return {key: optuna.distributions.CategoricalDistribution(values[key])
          for key in sweep.grid[index].overrides}


def runs_of(sweep: Sweep, number: int, params: dict[str, Any]) -> list[trials_lib.Trial]:
  """The runs that answer study trial `number` with Optuna `params`: a search configuration
  once per seed, each named '<number>-<params>[,seed=S]' (a retry passes its original's
  number, and so finds the original's run directories and checkpoints)."""
  overrides = search_lib.overrides_of(sweep.search, params)
  seeds = sweep.search.seeds
  runs = []
  for seed in seeds:
    run_overrides = {**overrides, **({'seed': seed} if len(seeds) > 1 or seed != sweep.base.seed
                                     else {})}
    runs.append(trials_lib.Trial(number, run_overrides, trials_lib.apply_overrides(
        sweep.base, run_overrides, f'search trial {number}')))
  return runs


def open_study(sweep: Sweep, workdir: str, url: str, worker: int = 0, create: bool = False):
  """The sweep's study with this worker's own sampler: seeded from the config's seed, the
  worker's number, how many trials the study holds and the machine's name, so that one
  worker on a fresh study samples the same configurations every time on this machine, and
  workers sampling at once do not repeat each other."""
  import optuna  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import study as study_lib  # pylint: disable=g-import-not-at-top
  sampler, pruner = optuna.samplers.RandomSampler(seed=0), None  # a grid samples nothing
  study = study_lib.open_study(workdir, url, experiment=sweep.experiment, base=sweep.base,
                               declared=sweep.declared, kind=sweep.kind,
                               direction=sweep.direction, objective=sweep.objective,
                               create=create)
  if sweep.search is not None:
    # The machine's name keeps two machines starting one study at once from drawing alike.
    entropy = [sweep.base.seed, worker, len(study.get_trials(deepcopy=False)),
               zlib.crc32(socket.gethostname().encode())]
    seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    sampler, pruner = search_lib.sampler(sweep.search, seed), search_lib.pruner(sweep.search)
  study.sampler, study.pruner = sampler, pruner or optuna.pruners.NopPruner()
  return study


def start(sweep: Sweep, workdir: str, url: str):
  """Creates the study (or opens it again) and queues the grid's trials it lacks."""
  from cnn_jax.sweeps import study as study_lib  # pylint: disable=g-import-not-at-top
  os.makedirs(workdir, exist_ok=True)  # the embedded study lives there
  study = open_study(sweep, workdir, url, create=True)
  if sweep.grid is not None:
    # A trial whose attempts were all taken from stopped workers (study_storage.RETRIES of them)
    # is queued again: a grid never loses a trial.
    queued = {t.user_attrs.get(study_lib.GRID_INDEX_ATTR)
              for t in study.get_trials(deepcopy=False) if not study_lib.superseded(t)}
    for trial in sweep.grid:
      if trial.index not in queued:
        study.enqueue_trial(grid_params(trial), user_attrs={
            study_lib.GRID_INDEX_ATTR: trial.index})
  return study
