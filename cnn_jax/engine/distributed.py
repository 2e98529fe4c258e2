"""One program over several processes (multi-controller JAX: one process per host, or
several on one machine), started with launch.py's --distributed flags.

    off       one process, exactly as without these flags (the default)
    auto      jax.distributed.initialize() with JAX's own cluster detection (SLURM, Open MPI,
              TPU pod slices, ...)
    explicit  --coordinator=HOST:PORT --num_processes=N --process_id=I (anything else, such
              as several processes on one machine)

Every process runs the same loop on the same global mesh (devices.py) and computes the same
batch order; each places only its own devices' part of each global array. On CPUs the
collectives between processes go through gloo. Only process 0 writes the run directory and
the console (run_record.py), so the workdir must be one directory that every process can read
(a shared filesystem on several hosts; checkpoints hold whole arrays, so a run resumes with
any number of processes or devices).

Joining is checked first, with a timeout (--distributed_timeout): JAX's own join aborts the
process with a native stack trace when a process never comes, so in explicit mode process 0
first waits, on the coordinator's port, for every other process to say it is there, and each
of them waits to reach it; either ends with one line naming what is missing. Once joined, a
process that dies makes JAX abort the others within the heartbeat timeout (the same
seconds), again with a native stack trace; so launch.py runs a distributed process under
`supervise`, which passes its output through and turns such an abort into one line.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

from absl import logging
import numpy as np

from cnn_jax import interrupts
from cnn_jax import machine
from cnn_jax.errors import InputError

MODES = ('off', 'auto', 'explicit')
DEFAULT_TIMEOUT = 60  # seconds on an idle machine


class JoinError(InputError):
  pass


def initialize(mode: str, coordinator: str = '', num_processes: int = 0, process_id: int = -1,
               timeout: int | None = None) -> None:
  """Joins this process to the others (before JAX computes anything). timeout: seconds, by
  default 60 scaled by how busy this machine is (machine.patience)."""
  if timeout is None:
    timeout = round(machine.patience(DEFAULT_TIMEOUT))
  if mode not in MODES:
    raise InputError(f'--distributed={mode}: allowed are {", ".join(MODES)}')
  if mode == 'off':
    return
  import jax  # pylint: disable=g-import-not-at-top  (after startup.py sized the pools)
  kwargs = {}
  if mode == 'explicit':
    host, _, port = coordinator.rpartition(':')
    if not host or not port.isdigit():
      raise InputError(f'--coordinator={coordinator!r}: allowed is HOST:PORT')
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise InputError(f'--num_processes={num_processes} --process_id={process_id}: allowed '
                       'are N >= 1 and 0 <= I < N')
    if num_processes > 1:
      _check_everyone_joins(host, int(port), num_processes, process_id, timeout)
    kwargs = dict(coordinator_address=coordinator, num_processes=num_processes,
                  process_id=process_id)
  if jax.config.jax_platforms in (None, '', 'cpu'):
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(**kwargs, initialization_timeout=timeout,
                               heartbeat_timeout_seconds=timeout)
  except ValueError as error:  # auto outside a cluster: 'coordinator_address should be defined'
    if mode != 'auto':
      raise
    raise InputError(f'--distributed=auto found no cluster to join ({error}): run it the way '
                     'the cluster starts its processes (under SLURM: srun, inside the job), or '
                     'use --distributed=explicit or off') from None
  _connect_collectives()
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)  # one console: process 0's
    interrupts.quiet()
  logging.info('Process %d of %d: %d of %d devices here', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def _connect_collectives() -> None:
  """Makes the collectives' connections between the processes now, while they are in step.

  On CPUs, gloo connects a set of devices at their first collective and gives up if a process
  is 30 s late (a fixed deadline, not --distributed_timeout; jax-ml/jax#40831), which a
  process that opens a study, or compiles what another read from its cache, can be on a busy
  machine. Once connected, a collective waits as long as XLA lets it. So right after joining,
  one tiny collective over every device (the set a run's program spans) and one over a device
  of each process (multihost_utils' set) connect both."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1 or jax.default_backend() != 'cpu':
    return
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  mesh = jax.make_mesh((jax.device_count(),), ('all',))
  ones = multihost_utils.host_local_array_to_global_array(
      np.ones(jax.local_device_count(), np.float32), mesh, jax.sharding.PartitionSpec('all'))
  jax.block_until_ready(jax.jit(lambda x: x.sum())(ones))
  multihost_utils.sync_global_devices('cnn_jax: collectives connected')


def collective_failure(error: BaseException) -> str | None:
  """One line for a failed collective or coordination call raised into Python in a
  distributed run (another process died or fell too far behind), else None."""
  import jax  # pylint: disable=g-import-not-at-top
  if not isinstance(error, jax.errors.JaxRuntimeError):
    return None
  text = ' '.join(str(error).split())
  if not re.search(r'Gloo|DEADLINE_EXCEEDED|coordination|heartbeat|Barrier', text, re.I):
    return None
  text = re.sub(r' \[type\.googleapis\.com/[^\]]*\]', '', text)
  return ('a collective with the other processes failed, most likely because one of them died '
          f'or fell behind ({text[:300]})')


def _check_everyone_joins(host: str, port: int, count: int, process_id: int,
                          timeout: float) -> None:
  """Process 0 waits on the coordinator's port for the other count - 1 processes; each of
  them connects there. Then the port is free again for JAX's coordinator."""
  deadline = time.time() + timeout
  if process_id == 0:
    server = socket.create_server(('', port))  # (SO_REUSEADDR: JAX's coordinator binds next)
    server.settimeout(1.0)
    peers, seen = [], set()
    try:
      while len(seen) < count - 1:
        if time.time() > deadline:
          missing = sorted(set(range(1, count)) - seen)
          raise JoinError(f'process 0: only {len(seen) + 1} of {count} processes joined at '
                          f'{host}:{port} within {timeout:.0f} s (--distributed_timeout); '
                          f'never came: process {", ".join(map(str, missing))}')
        try:
          peer, _ = server.accept()
        except socket.timeout:
          continue
        peer.settimeout(max(1.0, deadline - time.time()))
        try:
          seen.add(int(peer.recv(16).decode().strip() or -1))
        except (OSError, ValueError):
          pass
        peers.append(peer)
      for peer in peers:
        peer.sendall(b'go\n')
    finally:
      for peer in peers:
        peer.close()
      server.close()
    return
  while True:
    reason = 'process 0 closed the connection'
    try:
      with socket.create_connection((host, port), timeout=max(1.0, deadline - time.time())) as c:
        c.sendall(f'{process_id}\n'.encode())
        if c.recv(16).startswith(b'go'):
          return
    except OSError as error:
      reason = error.strerror or str(error)
    if time.time() > deadline:
      raise JoinError(f'process {process_id}: could not join the coordinator (process 0) at '
                      f'{host}:{port} within {timeout:.0f} s (--distributed_timeout): {reason}')
    time.sleep(0.5)


def agreed_signal(signum: int | None) -> int:
  """The signal any process of the run received (0: none), the same on every process."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return int(max(multihost_utils.process_allgather(np.int32(signum or 0))))


_sync_calls, _preempted = 0, False


def preempted() -> bool:
  """Whether every process is to checkpoint now after a SIGTERM to any of them. JAX's
  distributed runtime takes SIGTERM over from interrupts.py (its preemption notifier) and
  agrees with the other processes on a call to stop at: the fastest one's next call. So
  every process calls this at the same points (each train call, each sweep order) and the
  count of calls, not the step, is the counter: a call may train several steps, and a
  sweep's next trial starts again at step 0."""
  global _sync_calls, _preempted
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  _sync_calls += 1
  # Once reached, for good: a run that finishes at that call leaves its sweep worker to
  # stop between trials.
  _preempted = _preempted or multihost_utils.reached_preemption_sync_point(_sync_calls)
  return _preempted


def from_writer(value=None):
  """Process 0's `value` (anything JSON holds) on every process; the others pass nothing.
  For what only process 0 decides: a sweep's next trials, a pruner's verdicts."""
  if process_count() == 1:
    return value
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  data = b''
  if is_writer():
    try:
      data = json.dumps({'value': value}).encode()
    except (TypeError, ValueError) as error:  # sent too, so that no process waits for it
      data = json.dumps({'unsent': f'{type(value).__name__}: {error}'}).encode()
  size = int(multihost_utils.broadcast_one_to_all(np.int32(len(data))))
  # (Padded to whole KiB: each buffer size is a program of its own to compile.)
  buffer = np.zeros(-(-size // 1024) * 1024, np.uint8)
  buffer[:len(data)] = np.frombuffer(data, np.uint8)
  sent = json.loads(bytes(np.asarray(multihost_utils.broadcast_one_to_all(buffer))[:size]))
  if 'unsent' in sent:
    raise RuntimeError(f'process 0 could not send its value to the others: {sent["unsent"]}')
  return sent['value']


def shared_error(error: Exception | None) -> Exception | None:
  """Process 0's UserError (or None) on every process, as the same class and message: what
  only process 0 checks (the run directory's lock and config) stops all of them, instead of
  leaving the others waiting in a collective."""
  from cnn_jax import errors  # pylint: disable=g-import-not-at-top
  sent = from_writer(None if error is None else [type(error).__name__, str(error)])
  if sent is None:
    return None
  kind = getattr(errors, sent[0], errors.UserError)
  return error if is_writer() else kind(sent[1])


def process_count() -> int:
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_count()


def process_index() -> int:
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_index()


def is_writer() -> bool:
  """Whether this process writes the run directory and the console (process 0)."""
  return process_index() == 0


SUPERVISED = 'CNN_JAX_SUPERVISED'
_FATAL = re.compile(r'^F\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] (.*)')
_GLOO_ABORT = re.compile(r"^terminate called after throwing an instance of 'gloo::")


def supervise(who: str) -> None:
  """Runs this command again as a child and exits as it did, an abort of JAX's distributed
  runtime shown as one line (exit status 1) instead of its native stack trace. Signals go on
  to the child (which checkpoints: interrupts.py). Returns at once inside the child."""
  if os.environ.get(SUPERVISED):
    return
  child = subprocess.Popen([sys.executable, *sys.argv], env={**os.environ, SUPERVISED: '1'},
                           stderr=subprocess.PIPE, text=True, errors='replace')
  for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda s, _: child.send_signal(s))
  fatal, lines = None, iter(child.stderr)
  for line in lines:
    if fatal is None and _FATAL.match(line):
      fatal = _FATAL.match(line).group(1).split('. Disable Python buffering')[0]
    elif fatal is None and _GLOO_ABORT.match(line):
      # When a process dies, the others' collectives either wait for the heartbeat timeout
      # (the abort above) or fail at once in gloo, whichever comes first.
      what = next(lines, '').split('what():', 1)[-1].strip()
      fatal = ('a collective with the other processes failed, most likely because one of '
               f'them died (gloo: {what})')
    if fatal is None:
      sys.stderr.write(line)
  status = child.wait()
  if fatal is not None:
    print(f'error: {who} stopped: {fatal}', file=sys.stderr)
    sys.exit(1)
  sys.exit(status if status >= 0 else 128 - status)
