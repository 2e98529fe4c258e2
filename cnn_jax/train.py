"""The public entry points: one run, `train_and_evaluate(config, workdir)`, a vmapped group
of runs, `train_group(configs, workdirs)`, and a plan made beforehand, `train_plan`.

A config becomes a plan (engine/plan.py: validated, its data loaded, its devices and layers
decided), the plan is trained by the engine's loop (engine/loop.py), one member for a single
run, several for a sweep's vmapped group. This module adds what the engine leaves to its
observers: the pictures (pictures/run_pictures.py), and what the caller passes (a sweep's
pruning). See docs/DESIGN.md for how a config becomes a run.
"""
from __future__ import annotations

from typing import Any, Sequence

import ml_collections

from cnn_jax import console
from cnn_jax.engine import distributed
from cnn_jax.engine import loop
from cnn_jax.engine import plan as plan_lib
from cnn_jax.pictures import run_pictures


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains and evaluates as `config` says, writing TensorBoard events, checkpoints and
  results.json to `workdir`; resumes from the workdir's checkpoint when there is one.
  Returns the results.json record (engine/results.py documents its schema). Called from
  plain Python (a notebook), it prints its progress to stderr too (console.py)."""
  with console.progress_visible():
    return train_group([config], [workdir])[0]


def train_group(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
                observers: Sequence[Sequence] | None = None, *,
                checked: bool = False) -> list[dict[str, Any]]:
  """Trains runs that share a program as one group, each with its pictures and the given
  observers (one list per run); returns their results.json records. `checked`: as
  engine/plan.make's."""
  return train_plan(plan_lib.make(configs, checked=checked), workdirs, observers)


def train_plan(plan: plan_lib.Plan, workdirs: Sequence[str],
               observers: Sequence[Sequence] | None = None,
               population=None) -> list[dict[str, Any]]:
  """Trains a plan's members (engine/plan.make), each into its workdir, with its pictures and
  the given observers; returns their results.json records. `population`: the members are a
  population (engine/population_run.Spec; sweeps/population_sweep.py)."""
  observers = observers or [[] for _ in range(plan.runs)]
  pictures = distributed.is_writer()  # (process 0 alone draws a distributed run's)
  return loop.train(plan, workdirs, [
      [*([run_pictures.PictureObserver()] if pictures else []), *extra] for extra in observers],
      population)
