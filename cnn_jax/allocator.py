"""Preloads tcmalloc into this process when the library is installed.

With glibc's malloc a JAX process on one of this project's CPU machines once spent most of a
run returning large buffers to the kernel, and tcmalloc cut that away; how much it gains
varies by machine (../shared/ENGINEERING.md: 6% per T2 epoch on an Intel Xeon; measured
side by side on an AMD EPYC on 2026-11-23 with benchmarks/train_loop.py: no gain, 71.6
against 73.6 steps/s). The allocator can only be swapped before the process starts, so
this re-executes the interpreter once with LD_PRELOAD set. Install it with
`apt-get install libtcmalloc-minimal4`; set CNN_JAX_NO_TCMALLOC=1 to opt out.

It is optional, so its absence prints nothing here: a command's stderr stays its own (a bad
input is one line), and a run's log says which allocator it ran under (`described`).
"""
import ctypes.util
import glob
import os
import sys

_CANDIDATES = ('/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4',
               '/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4',
               '/usr/lib/libtcmalloc_minimal.so.4')


def find_tcmalloc() -> str | None:
  for path in _CANDIDATES:
    if os.path.exists(path):
      return path
  found = ctypes.util.find_library('tcmalloc_minimal')
  return found and (glob.glob(f'/usr/lib*/**/{found}', recursive=True) or [None])[0]


def use_tcmalloc_if_available() -> None:
  if os.environ.get('CNN_JAX_NO_TCMALLOC') or 'tcmalloc' in os.environ.get('LD_PRELOAD', ''):
    return
  library = find_tcmalloc()
  if library is None:
    return
  env = dict(os.environ, LD_PRELOAD=':'.join(filter(None, [library, os.environ.get('LD_PRELOAD')])))
  os.execve(sys.executable, [sys.executable] + sys.argv, env)


def name() -> str:
  """'tcmalloc' or 'glibc malloc': the allocator this process runs under."""
  return 'tcmalloc' if 'tcmalloc' in os.environ.get('LD_PRELOAD', '') else 'glibc malloc'


def described() -> str:
  """name(), and for glibc malloc why, for a CPU run's log."""
  if name() == 'tcmalloc':
    return 'tcmalloc'
  if os.environ.get('CNN_JAX_NO_TCMALLOC'):
    return 'glibc malloc (CNN_JAX_NO_TCMALLOC set)'
  return ('glibc malloc (optional: apt-get install libtcmalloc-minimal4, '
          'docs/PERFORMANCE.md)')
