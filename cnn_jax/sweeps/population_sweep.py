"""A population-based training sweep (h.pbt, sweeps/pbt.py) run into its sweep directory.

    python launch.py --config=experiments/pbt.py --workdir=D --sweep

The population is one plan: its members (sweeps/pbt.initial_configs: their own seeds, the
space drawn) train as one vmapped group, ranked at each interval by the loop
(engine/population_run.py). It needs no study and no workers: each member's directory
(`D/member-<k>/`) is what a single run writes, `D/population.json` holds the lineage and the
hyperparameters of every interval, and sweep.csv / sweep.md rank the members by the
objective, each with the hyperparameters it ended with. The same command resumes an
interrupted population from its checkpoints, bit for bit.

The best member's history is written as a config, `D/best_member.py`: its weights traced back
through the lineage to the member that started them (whose seed gives the initial
parameters), and each stretch between intervals a segment (config.segments,
engine/segments.py) with the traced values and the seed (data order, dropout key) of the
member that trained it. `python launch.py --config=D/best_member.py` trains it to the same
parameters bit for bit: as one of as many copies as the population had members
(segments.group_size), since a member's arithmetic depends on the vmapped program's size.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from absl import logging
import ml_collections

from cnn_jax import atomic_files
from cnn_jax import console
from cnn_jax.config import files
from cnn_jax.engine import metrics
from cnn_jax.engine import population_run
from cnn_jax.engine import results
from cnn_jax.errors import ConfigError
from cnn_jax.sweeps import pbt as pbt_lib
from cnn_jax.sweeps import tables


@dataclasses.dataclass
class Member:
  """A member as the sweep tables show it: its hyperparameters at the end as `overrides`."""
  index: int
  overrides: dict[str, Any]
  config: ml_collections.ConfigDict

  @property
  def name(self) -> str:
    return member_name(self.index)


def member_name(index: int) -> str:
  return f'member-{index}'


def interval_steps(checked, steps_per_epoch: float, total_steps: int) -> int:
  """The declaration's interval in steps; one that leaves no ranking before the last step is
  refused."""
  steps = checked.interval_steps or max(1, round(checked.interval_epochs * steps_per_epoch))
  if steps >= total_steps:
    given = (f'interval_steps={checked.interval_steps}' if checked.interval_steps
             else f'interval_epochs={checked.interval_epochs} ({steps} steps)')
    raise ConfigError(f'h.pbt: {given} leaves no interval before the run\'s last step '
                      f'({total_steps}); give a shorter interval or a longer run')
  return steps


def run(sweep, workdir: str) -> list[dict[str, Any]]:
  """Trains (or resumes) the population of the checked declaration `sweep.pbt` into
  `workdir`; returns the table rows."""
  from cnn_jax import train  # pylint: disable=g-import-not-at-top  (JAX after the allocator)
  from cnn_jax.engine import plan as plan_lib  # pylint: disable=g-import-not-at-top
  checked = sweep.pbt
  configs = pbt_lib.initial_configs(checked, sweep.base)
  plan = plan_lib.make(configs)  # each member's config validated, as a single run's is
  spec = population_run.Spec(
      rule=pbt_lib.rule(checked), objective=checked.objective, seed=checked.seed,
      interval_steps=interval_steps(checked, plan.steps_per_epoch, plan.total_steps),
      directory=os.path.abspath(workdir))
  atomic_files.writable_directory(workdir, '--workdir')
  files.record_origin(workdir, sweep.experiment)
  logging.info('Population-based training %s in %s: %d members ranked every %d steps on %s',
               sweep.experiment, workdir, len(configs), spec.interval_steps, spec.objective)
  with console.progress_visible():
    train.train_plan(plan, [os.path.join(workdir, member_name(k)) for k in range(len(configs))],
                     population=spec)
  return write_tables(workdir, sweep, configs)


def write_tables(workdir: str, sweep, configs) -> list[dict[str, Any]]:
  """sweep.csv and sweep.md: the members best first, with the hyperparameters each ended
  with (population.json), and a line on the best."""
  recorded = atomic_files.read_json(os.path.join(workdir, population_run.FILENAME))
  last = recorded['intervals'][-1]['values'] if recorded['intervals'] else recorded['start']
  members = [Member(k, {path: values[k] for path, values in last.items()}, config)
             for k, config in enumerate(configs)]
  objective, direction = sweep.pbt.objective, sweep.pbt.direction
  rows = tables.table_rows(workdir, members, None, objective, direction)
  tables.write_tables(workdir, members, rows, _best_line(workdir, rows, objective, recorded))
  if rows and rows[0]['status'] == 'ok':
    write_replay(workdir, configs, recorded, rows[0]['index'])
  return rows


def history(recorded: dict, member: int) -> list[tuple[int, int, dict[str, float]]]:
  """(start step, the member that trained its weights from there, the traced values it
  trained with) of each stretch of `member`'s weights from step 0, from population.json:
  walked back through whose state each took at each interval; stretches alike are one."""
  paths, current, stretches = recorded['paths'], member, []
  for interval in reversed(recorded['intervals']):
    stretches.append((interval['step'], current,
                      {p: interval['values'][p][current] for p in paths}))
    current = interval['source'][current]
  stretches.append((0, current, {p: recorded['start'][p][current] for p in paths}))
  merged = []
  for stretch in reversed(stretches):
    if not merged or merged[-1][1:] != stretch[1:]:
      merged.append(stretch)
  return merged


def replay_config(configs, recorded: dict, member: int) -> ml_collections.ConfigDict:
  """The config that trains `member`'s history alone: its root member's config (initial
  parameters) with one segment per stretch of history()."""
  stretches = history(recorded, member)
  config = ml_collections.ConfigDict(configs[stretches[0][1]].to_dict())
  config.segments.starts = tuple(start for start, _, _ in stretches)
  config.segments.seeds = tuple(configs[trainer].seed for _, trainer, _ in stretches)
  config.segments.paths = tuple(recorded['paths'])
  config.segments.levels = tuple(tuple(values[path] for _, _, values in stretches)
                                 for path in recorded['paths'])
  config.segments.group_size = len(configs)  # the population's program: bit for bit
  return config


REPLAY = 'best_member.py'


def write_replay(workdir: str, configs, recorded: dict, member: int) -> None:
  """D/best_member.py, an experiment file of the best member's replay_config."""
  import json  # pylint: disable=g-import-not-at-top
  import pprint  # pylint: disable=g-import-not-at-top
  config = replay_config(configs, recorded, member)
  directory = os.path.abspath(workdir)
  path = os.path.join(directory, REPLAY)
  saved = json.loads(config.to_json())
  atomic_files.write_text(path, f'''"""{member_name(member)} of the population in {directory},
replayed: its weights from {len(config.segments.starts)} segment(s) of training (config.segments:
from each start step, the traced values and the seed of the data order and dropout key of the
member that trained them; `seed` gives the initial parameters), as one of
{config.segments.group_size} copies in the population's program, to its parameters bit for bit:

    python launch.py --config={path}

With --config.segments.group_size=1 it trains alone, {config.segments.group_size}x cheaper, to
float tolerance over a short run; rounding apart compounds over a long one.
"""
from cnn_jax.config import files

CONFIG = {pprint.pformat(saved, width=96, sort_dicts=True)}


def get_config(arg=None):
  del arg
  return files.from_json(CONFIG)
''')


def _best_line(workdir: str, rows, objective: str, recorded: dict) -> str:
  best = rows[0] if rows and rows[0]['status'] == 'ok' else None
  if best is None:
    return ''
  split, _, name = objective.partition('/')
  done = results.read(os.path.join(workdir, best['trial']))
  taken = sum(interval['source'][best['index']] != best['index']
              for interval in recorded['intervals'])
  return (f'Best member: {best["trial"]}, {objective} '
          f'{metrics.show(name, results.final_metric(done, split, name))} at the end (the '
          f'objective); test error {metrics.show(metrics.ERROR, best["test_error"])}, reported '
          f'apart (not used to choose). It took another member\'s state at {taken} of '
          f'{len(recorded["intervals"])} intervals (population.json has the lineage).')
