"""The public entry point: one run, `train_and_evaluate(config, workdir)`.

A single run is the engine's loop with one member (engine/loop.py); a sweep's vmapped group
calls the same loop with several. See docs/DESIGN.md for how a config becomes a run.
"""
from __future__ import annotations

from typing import Any

import ml_collections

from cnn_jax import console
from cnn_jax.engine import loop


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains and evaluates as `config` says, writing TensorBoard events, checkpoints and
  results.json to `workdir`; resumes from the workdir's checkpoint when there is one.
  Returns the results.json record (engine/results.py documents its schema). Called from
  plain Python (a notebook), it prints its progress to stderr too (console.py)."""
  with console.progress_visible():
    return loop.train([config], [workdir])[0]
