"""JAX's persistent compilation cache, so that a command run again loads its compiled
programs (init, train step, evaluation) from disk instead of compiling them.

The cache lives in $CNN_JAX_CACHE/jax (default ~/.cache/cnn_jax/jax); JAX keys each entry
on the program, the backend, the device and the JAX version, so a stale entry is never used.
CNN_JAX_COMPILATION_CACHE=0 turns it off.
"""
from __future__ import annotations

import os

import jax

from cnn_jax import cache_dir

_SWITCH = 'CNN_JAX_COMPILATION_CACHE'


def enable() -> None:
  if os.environ.get(_SWITCH, '1') == '0' or jax.config.jax_compilation_cache_dir:
    return
  jax.config.update('jax_compilation_cache_dir', cache_dir.cache_dir('jax'))
  # Small programs compile in well under JAX's default 1 s threshold, yet add up to seconds
  # at start: keep every one.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
