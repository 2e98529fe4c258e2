"""Times again, on this machine, every implementation of each convolution and pooling of an
experiment (cnn_jax/layer_impls/), prints every candidate's timings and the choice, and
writes them to the cache that runs choose by.

    python -m cnn_jax.time_layers --config=experiments/pool.py
    python -m cnn_jax.time_layers --config=experiments/pool.py --config.train.batch_size=128
    python -m cnn_jax.time_layers --config=experiments/pool.py --members=4  # a vmapped group
    python -m cnn_jax.time_layers --config=experiments/pool.py --all   # forget this machine's
                                                                        # other layers too
    python -m cnn_jax.time_layers --config=experiments/pool.py --show  # the cache as it is

The layers are measured at the batch each device computes (train.batch_size over
train.num_devices) and, with --members=K, under vmap as a sweep group of K runs them. The
config's model.conv_impl / pool_impl do not matter here: every layer is measured, and a
config that names an implementation still runs that one. Runs started afterwards on this
machine choose by the new entries, and so does a run resumed afterwards: re-measuring between
a run and its resumption may change its layers mid-run (they agree to float tolerance). A
bad flag or config is one line, `error: ...`, exit status 2 (--verbose: the traceback).
"""
from __future__ import annotations

import sys

from absl import flags
from ml_collections import config_flags

from cnn_jax import startup
from cnn_jax import cli
from cnn_jax import errors

config_flags.DEFINE_config_file('config', None, 'Experiment config file (as launch.py takes '
                                'it, with --config.X=Y overrides).', lock_config=True)
flags.DEFINE_integer('members', 1, 'Measure the layers under vmap for a sweep group of this '
                     'many runs (1: a run alone).')
flags.DEFINE_bool('all', False, "Forget every layer measured on this machine first, not only "
                  "this config's.")
flags.DEFINE_bool('show', False, 'Print what the cache holds for these layers, measuring only '
                  'those it lacks, instead of measuring them again.')
flags.mark_flags_as_required(['config'])
FLAGS = flags.FLAGS


def main(argv):
  del argv  # cli.parse_flags refuses arguments that are not flags
  if FLAGS.members < 1:
    raise errors.InputError(f'--members={FLAGS.members}: allowed is a count of 1 or more')
  if FLAGS.all and FLAGS.show:
    raise errors.InputError('--all forgets what --show would print: give one of them')
  print(remeasure(FLAGS.config, flags.FLAGS['config'].config_filename, FLAGS.members,
                  forget_all=FLAGS.all, again=not FLAGS.show))


def remeasure(config, experiment: str, members: int = 1, forget_all: bool = False,
              again: bool = True, path: str | None = None) -> str:
  """Measures the config's layers again (again=False: reads what the cache holds) and
  returns the table of timings and choices as printed."""
  # pylint: disable=g-import-not-at-top  (JAX only after the allocator)
  from cnn_jax import cache_dir
  from cnn_jax import machine
  from cnn_jax.config import validation
  from cnn_jax.data import datasets
  from cnn_jax.engine import compilation_cache
  from cnn_jax.engine import devices
  from cnn_jax.layer_impls import cache
  from cnn_jax.layer_impls import resolution
  from cnn_jax.model import timed_layers
  validation.validate(config, members)
  compilation_cache.enable()  # as a run does: measuring again compiles nothing
  path = path or cache_dir.cache_dir(cache.MEASUREMENTS)
  image_shape = datasets.info(config.data).image_shape
  batch = config.train.batch_size
  members, batch = devices.place(config.train.num_devices, members, batch).per_device(
      members, batch)
  named = timed_layers.named_layers(config.model, image_shape)
  dropped = cache.forget(path) if forget_all else 0
  found = resolution.measure(named, batch, members, path, again=again)
  return _table(config, experiment, found, batch, members, path, machine.machine_key(),
                dropped)


def _table(config, experiment, found, batch, members, path, machine_key, dropped) -> str:
  from cnn_jax.layer_impls import choice  # pylint: disable=g-import-not-at-top
  from cnn_jax.layer_impls import implementations  # pylint: disable=g-import-not-at-top
  names = list(dict.fromkeys([*implementations.CONV_IMPLS, *implementations.POOL_IMPLS]))
  lines = [f'{config.model.name} ({experiment}), batch {batch} per device, {members} '
           f'member{"s" if members > 1 else ""}, on {machine_key}; ms per call, the fastest '
           'of the rounds (their median); the choice is by the fastest',
           f'| layer | shape | part | {" | ".join(names)} | chosen | rounds | measured |',
           '| --- ' * (len(names) + 6) + '|']
  for m in found.values():
    chosen = m.chosen()
    for part, ms in m.entry['ms'].items():
      median = m.entry['median_ms'][part]
      cells = [f'{ms[n]:.2f} ({median[n]:.2f})' if n in ms else '-' for n in names]
      lines.append(f'| {m.name} | {m.layer.describe()} | {part} | {" | ".join(cells)} | '
                   f'{chosen[part]} | {m.entry["rounds"]} | '
                   f'{"now" if m.fresh else m.entry["measured"]} |')
  lines.append('layers: ' + ', '.join(
      f'{m.name}={m.conv_impl() if m.name.startswith("conv") else m.chosen()["train"]}'
      for m in found.values()))
  fresh = sum(m.fresh for m in found.values())
  lines.append(f'cache: {path} ({fresh} entr{"y" if fresh == 1 else "ies"} written'
               + (f', {dropped} of this machine forgotten first' if dropped else '') + ')')
  for field in ('conv_impl', 'pool_impl'):
    if config.model[field] != choice.AUTO:
      lines.append(f'note: the config sets model.{field}={config.model[field]!r}; its runs use '
                   'that, not these choices')
  return '\n'.join(lines)


if __name__ == '__main__':
  # allocator re-executes `[python] + sys.argv`, and under -m sys.argv[0] is this file's path,
  # which would run it as a script outside its package: re-execute it as a module instead.
  sys.argv[0:1] = ['-m', 'cnn_jax.time_layers']
  startup.before_jax()  # as in launch.py's runs, whose choice this measures
  sys.argv[0:2] = [__file__]
  cli.run(main)
