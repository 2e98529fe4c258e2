"""What every entry point does before JAX starts: size XLA's CPU thread pools for the devices
XLA_FLAGS forces (cpu_threads.py), preload tcmalloc (allocator.py, which re-executes the
interpreter and so carries the environment set here into the new process), and keep JAX's
"no TPU here" line out of the log."""
import logging
import os

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


DETERMINISTIC_FLAG = '--xla_gpu_deterministic_ops=true'


def use_deterministic_ops(on: bool) -> None:
  """train.deterministic: XLA's deterministic ops on GPU. XLA reads XLA_FLAGS when JAX's
  backends start, so it is added then; a process whose backends run without it (a sweep
  worker's earlier trial) cannot take it any more."""
  flags = os.environ.get('XLA_FLAGS', '')
  if not on or DETERMINISTIC_FLAG in flags.split():
    return
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if xla_bridge.backends_are_initialized():
    from cnn_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
    raise ConfigError('train.deterministic=True must hold from the start of the process: it '
                      'started without it; set it in the experiment (a sweep\'s base config), '
                      f'or XLA_FLAGS={DETERMINISTIC_FLAG}')
  os.environ['XLA_FLAGS'] = f'{flags} {DETERMINISTIC_FLAG}'.strip()
  logging.getLogger('absl').info('train.deterministic: XLA_FLAGS=%s', os.environ['XLA_FLAGS'])
