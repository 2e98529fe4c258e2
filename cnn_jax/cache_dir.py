"""Where cnn_jax keeps what it can rebuild: $CNN_JAX_CACHE, default ~/.cache/cnn_jax.

Holds the decoded dataset arrays (data/datasets.py), JAX's compiled programs
(engine/compilation_cache.py), the sweep benchmark's measurements (sweeps/planning.py) and
the layer timings that 'auto' chooses by (layer_impls/cache.py, layer_choices.json).
Deleting it costs only time (and a deleted layer choice may be measured otherwise).
"""
import os


def cache_dir(*parts: str) -> str:
  root = os.environ.get('CNN_JAX_CACHE') or os.path.join(os.path.expanduser('~'), '.cache',
                                                         'cnn_jax')
  return os.path.join(root, *parts)
