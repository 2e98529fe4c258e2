"""Loads an experiment file (`path.py` or `path.py:args`) the way launch.py's --config does,
and records in a run or sweep directory which file it came from (for the report's "what
differs from the experiment's defaults")."""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import ml_collections

from cnn_jax import atomic_files
from cnn_jax.errors import RunDirectoryError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_module(path: str):
  """Imports an experiment file by path. Experiment files import `experiments.default`, so
  the repository root goes on sys.path first, as it is for launch.py."""
  if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
  if not os.path.exists(path):
    raise FileNotFoundError(f'experiment file {path} does not exist')
  name = 'experiment_' + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def from_json(saved: dict) -> ml_collections.ConfigDict:
  """A config as JSON holds it (a run's config.json, a replayed member's file) as the
  ConfigDict it was: fields it lacks (written before they existed) at their defaults, and its
  lists tuples again, as the experiment files and the sweeps' override checks hold them."""
  return ml_collections.ConfigDict(_with_tuples(with_defaults(saved)))


def with_defaults(saved: dict) -> dict:
  """A config as JSON holds it (a run's config.json), with every field it lacks (written
  before the field existed) at its default: what the run ran with."""
  from cnn_jax.config import fields  # pylint: disable=g-import-not-at-top  (it imports models)
  filled = json.loads(json.dumps(saved))
  for field in fields.FIELDS:
    *parents, leaf = field.path.split('.')
    node = filled
    for part in parents:
      node = node.setdefault(part, {})
    if leaf not in node:
      node[leaf] = list(field.default) if isinstance(field.default, tuple) else field.default
  return filled


def _with_tuples(value):
  if isinstance(value, dict):
    return {key: _with_tuples(item) for key, item in value.items()}
  if isinstance(value, list):
    return tuple(_with_tuples(item) for item in value)
  return value


def load_config(spec: str) -> ml_collections.ConfigDict:
  """'experiments/pool.py:variant=slides' -> that file's get_config('variant=slides')."""
  path, _, arg = spec.partition(':')
  module = load_module(path)
  return module.get_config(arg) if arg else module.get_config()


ORIGIN_FILENAME = 'experiment.json'


def record_origin(workdir: str, experiment: str) -> None:
  """Notes in `workdir` the experiment spec ('path.py' or 'path.py:arg') it was run from,
  unless a run there already noted one (a command refused for that directory must not
  rewrite it)."""
  path = os.path.join(workdir, ORIGIN_FILENAME)
  if os.path.exists(path):
    return
  atomic_files.make_dirs(workdir)
  atomic_files.write_json(path, {'experiment': experiment})


def recorded_origin(workdir: str) -> str | None:
  """The experiment spec recorded in `workdir` or, for a sweep trial, in its sweep directory."""
  for directory in (workdir, os.path.dirname(os.path.normpath(workdir))):
    path = os.path.join(directory, ORIGIN_FILENAME)
    if os.path.exists(path):
      recorded = atomic_files.read_json(path).get('experiment')
      if not isinstance(recorded, str):
        raise RunDirectoryError(f'{path} is damaged: it names no experiment file; restore it, '
                                'or remove it (the report then shows no config differences)')
      return recorded
  return None
