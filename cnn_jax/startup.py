"""What every entry point does before JAX starts: size XLA's CPU thread pools for the devices
XLA_FLAGS forces (cpu_threads.py), then preload tcmalloc (allocator.py, which re-executes the
interpreter and so carries the environment set here into the new process)."""
from cnn_jax import allocator
from cnn_jax import cpu_threads


def before_jax() -> None:
  cpu_threads.size_pools_before_jax()
  allocator.use_tcmalloc_if_available()
