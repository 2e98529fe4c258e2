"""What every entry point does before JAX starts: size XLA's CPU thread pools for the devices
XLA_FLAGS forces (cpu_threads.py), preload tcmalloc (allocator.py, which re-executes the
interpreter and so carries the environment set here into the new process), and keep JAX's
"no TPU here" line out of the log."""
import logging

from cnn_jax import allocator
from cnn_jax import cpu_threads


def _not_the_missing_tpu(record: logging.LogRecord) -> bool:
  # JAX looks for a TPU on every start and logs, at INFO, that libtpu.so is absent: on a CPU
  # or GPU machine a line of noise before every run's first line, or before its error.
  return not record.getMessage().startswith("Unable to initialize backend 'tpu'")


def before_jax() -> None:
  cpu_threads.size_pools_before_jax()
  allocator.use_tcmalloc_if_available()
  logging.getLogger('jax._src.xla_bridge').addFilter(_not_the_missing_tpu)
