"""A throwaway PostgreSQL server for the tests: the `postgres_url` fixture.

Optuna's workers in separate processes share a study only through a database server (SQLite's
locking is not made for it), so the tests start a real one: its own cluster in a temporary
directory, listening on 127.0.0.1 only, with a password-protected role, gone after the session.
"""
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile

import pytest

# Debian's postgresql-15 (what .ci/run installs), else whatever initdb is on $PATH.
DEBIAN_BIN = '/usr/lib/postgresql/15/bin'
REQUIRE_ENV = 'CNN_JAX_REQUIRE_POSTGRES'  # '1' in CI: a missing server fails instead of skipping
ROLE = DATABASE = 'cnn_jax'


def _bin_dir():
  if os.path.exists(os.path.join(DEBIAN_BIN, 'initdb')):
    return DEBIAN_BIN
  initdb = shutil.which('initdb')
  return os.path.dirname(initdb) if initdb else None


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _tail(path, lines=30):
  try:
    with open(path, errors='replace') as f:
      return ''.join(f.readlines()[-lines:])
  except OSError:
    return '(no log)'


@pytest.fixture(scope='session')
def postgres_url():
  """'postgresql://cnn_jax:<password>@127.0.0.1:<port>/cnn_jax': role and database `cnn_jax`
  (its owner, not a superuser) on a server of this session; one server per xdist worker."""
  with running_server() as server:
    yield server.url


class Server:
  """A running server's URL, and its stop and start again (a test of a lost storage)."""

  def __init__(self, url, pg_ctl):
    self.url, self._pg_ctl = url, pg_ctl

  def url_at(self, host):
    """The URL through another of the addresses it listens on (running_server's `listen`)."""
    return self.url.replace('@127.0.0.1:', f'@{host}:')

  def stop(self):
    self._pg_ctl('-m', 'immediate', '-w', 'stop')

  def start(self):
    self._pg_ctl('-w', '-t', '60', 'start')


@contextlib.contextmanager
def running_server(listen=()):
  """A throwaway server (see postgres_url), as a Server; on 127.0.0.1 and the addresses in
  `listen` (a network namespace's, tests/netns.py)."""
  bin_dir = _bin_dir()
  # initdb and postgres refuse to run as root: as root, run them as the `postgres` user.
  as_root = os.geteuid() == 0
  reason = None
  if bin_dir is None:
    reason = f'PostgreSQL not installed (no initdb in {DEBIAN_BIN} or on $PATH)'
  elif as_root:
    try:
      pwd.getpwnam('postgres')
    except KeyError:
      reason = 'running as root and there is no `postgres` user to run the server as'
  if reason:
    if os.environ.get(REQUIRE_ENV) == '1':
      pytest.fail(f'{reason}; ${REQUIRE_ENV}=1 requires it')
    pytest.skip(reason)

  # Under /tmp, not pytest's tmp_path: /tmp/pytest-of-root is 0700 root, which `postgres`
  # cannot traverse; a short path also keeps the unix socket under its 107-byte limit.
  root = tempfile.mkdtemp(prefix='cnn_jax_pg_', dir='/tmp')
  data, log = os.path.join(root, 'data'), os.path.join(root, 'server.log')
  user = dict(user='postgres', group='postgres', extra_groups=[]) if as_root else {}
  if as_root:
    shutil.chown(root, 'postgres', 'postgres')
  # HOME in the directory: psql/libpq never read root's ~/.pgpass or ~/.psqlrc.
  env = dict(os.environ, HOME=root, LC_ALL='C')

  def run(*command, **kwargs):
    done = subprocess.run([os.path.join(bin_dir, command[0]), *command[1:]], cwd=root,
                          env=env, capture_output=True, text=True, **user, **kwargs)
    if done.returncode:
      raise RuntimeError(f'{" ".join(command)} failed ({done.returncode}):\n{done.stdout}'
                         f'{done.stderr}\n--- server log ({log}):\n{_tail(log)}')
    return done

  password, port = secrets.token_hex(16), _free_port()  # hex: nothing to quote in the URL
  started = False
  try:
    # Host connections need a password (scram-sha-256); the unix socket, in a 0700 directory
    # of `postgres`, trusts its superuser, which creates the role below.
    run('initdb', '-D', data, '-U', 'postgres', '--auth-local=trust',
        '--auth-host=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync')
    with open(os.path.join(data, 'postgresql.conf'), 'a') as conf:  # stays postgres's file
      conf.write(f"\nlisten_addresses = '{','.join(('127.0.0.1', *listen))}'\nport = {port}\n"
                 f"unix_socket_directories = '{root}'\n"
                 # Throwaway data: durability only costs time.
                 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n')
    if listen:  # initdb's pg_hba.conf admits 127.0.0.1 and ::1 only; these: their subnets
      with open(os.path.join(data, 'pg_hba.conf'), 'a') as hba:
        hba.write('host all all samenet scram-sha-256\n')
    started = True  # from here on, teardown stops whatever pg_ctl may have started
    # -w: returns once the server accepts connections (or fails after -t seconds).
    run('pg_ctl', '-D', data, '-l', log, '-w', '-t', '60', 'start')
    # The SQL on stdin, not the command line: the password stays out of `ps`.
    run('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', root, '-p', str(port),
        '-U', 'postgres', '-d', 'postgres',
        input=f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}';\n"
              f'CREATE DATABASE {DATABASE} OWNER {ROLE};\n')
    yield Server(f'postgresql://{ROLE}:{password}@127.0.0.1:{port}/{DATABASE}',
                 lambda *args: run('pg_ctl', '-D', data, '-l', log, *args))
  finally:
    if started:
      # fast: closes the clients' connections (a test's leftover engines) instead of waiting.
      for mode in ('fast', 'immediate'):  # immediate only if fast did not stop it
        stop = subprocess.run([os.path.join(bin_dir, 'pg_ctl'), '-D', data, '-m', mode, '-w',
                               'stop'], cwd=root, env=env, capture_output=True, **user)
        if stop.returncode == 0 or not os.path.exists(os.path.join(data, 'postmaster.pid')):
          break
    shutil.rmtree(root, ignore_errors=True)
