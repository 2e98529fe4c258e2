"""Where a sweep's Optuna study is stored, and how that storage is opened and explained when it
fails: the database plumbing under study.py.

Storage: by default `sqlite:///<sweep dir>/study.db` (embedded: nothing to start, for the
workers of one machine); `--storage=URL` puts it in a database that workers on several
machines share (PostgreSQL: `postgresql://user@host/db`, the password from ~/.pgpass or
$PGPASSWORD, or in the URL). Both are Optuna's RDBStorage, the storage that has heartbeats
(study.py's Heartbeat records them); a trial whose heartbeat is older than three periods is
failed by the next worker that looks, and `retry_callback` queues a copy of it. Opening it
sets what SQLAlchemy and libpq leave unsafe for workers that share it: SQLite's write lock
taken at every transaction's start, network timeouts for a server that stops answering; and
`trouble` turns a lost connection into a line that names the cause and the server.

A URL's password is never written anywhere (`masked`, credentials.py, is what logs and errors
show).
"""
from __future__ import annotations

import os
import time
import warnings
from typing import Any

import optuna
import sqlalchemy

from cnn_jax import credentials
from cnn_jax.errors import UserError

FILENAME = 'study.db'
RETRIES = 3  # a trial whose worker died this often is left failed
NETWORK_TIMEOUT_MIN = 3  # seconds: a loaded machine's own delays stay under it

optuna.logging.set_verbosity(optuna.logging.WARNING)  # our log says what each trial does


class StorageError(UserError, RuntimeError):
  """The study's storage cannot be reached or used."""


def url_for(workdir: str, storage: str = '') -> str:
  return storage or f'sqlite:///{os.path.abspath(os.path.join(workdir, FILENAME))}'


def masked(url: str) -> str:
  """The URL as logs, errors and files may show it: without its password."""
  return credentials.masked(url)


def open_storage(url: str, heartbeat_seconds: int) -> optuna.storages.RDBStorage:
  engine_kwargs: dict[str, Any] = {'pool_pre_ping': True}
  if url.startswith('sqlite'):
    # Workers of one machine wait for each other's writes instead of failing at once.
    engine_kwargs = {'connect_args': {'timeout': 60}}
  elif url.startswith('postgresql'):
    engine_kwargs['connect_args'] = network_timeouts(url, heartbeat_seconds)
  try:
    storage = _created_storage(url, engine_kwargs, heartbeat_seconds)
    if url.startswith('sqlite'):
      _lock_on_begin(storage.engine)
    return storage
  except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
    raise StorageError(f'--storage={masked(url)}: cannot open the study\'s storage: '
                       f'{trouble(error, url)}') from None


def network_timeouts(url: str, heartbeat_seconds: int) -> dict[str, int]:
  """libpq's limits on waiting for a server that stopped answering, as connect arguments
  (those the URL's query sets itself are left to it). Without them a connection whose
  packets are dropped waits for TCP's retransmission timeout (about 15 minutes) in silence.
  A connection attempt waits `seconds`; a request whose packets go unacknowledged fails after
  `seconds` (tcp_user_timeout); an idle connection is probed from one heartbeat on, and given
  up three probes later."""
  seconds = max(NETWORK_TIMEOUT_MIN, heartbeat_seconds)
  wanted = {'connect_timeout': seconds, 'keepalives': 1, 'keepalives_idle': heartbeat_seconds,
            'keepalives_interval': max(1, heartbeat_seconds // 3), 'keepalives_count': 3,
            'tcp_user_timeout': seconds * 1000}
  try:
    given = sqlalchemy.engine.make_url(url).query
  except Exception:  # pylint: disable=broad-except  (open_storage says what is wrong)
    given = {}
  return {name: value for name, value in wanted.items() if name not in given}


def trouble(error: BaseException, url: str) -> str:
  """What went wrong with the storage, naming the cause and the server: Optuna wraps a lost
  connection as 'An exception is raised during the commit ... invalid data', and libpq's own
  words for a stopped or unreachable server do not say which server."""
  cause = error
  while not isinstance(cause, sqlalchemy.exc.DBAPIError) and (
      cause.__cause__ or cause.__context__):
    cause = cause.__cause__ or cause.__context__
  text = ' '.join(str(getattr(cause, 'orig', None) or cause).split())
  where = _server(url)
  for words, meaning in _CAUSES:
    if any(w in text for w in words):
      return f'{meaning.format(where=where)} ({first_line(cause)})'
  return first_line(cause)


def _server(url: str) -> str:
  try:
    parsed = sqlalchemy.engine.make_url(url)
  except Exception:  # pylint: disable=broad-except
    return 'the server'
  return f'{parsed.host or "localhost"}:{parsed.port or 5432}' if parsed.host or parsed.port else (
      'the server')


_CAUSES = (
    (('Connection refused',), 'nothing accepts connections at {where}: is the server running?'),
    (('timeout expired', 'timed out', 'Connection timed out'),
     'no answer from {where} within the network timeout: the server or the network is down'),
    (('server closed the connection', 'terminating connection', 'connection is closed',
      'the connection is lost', 'Connection reset', 'consuming input failed',
      'server conn crashed', 'SSL SYSCALL'),
     'the connection to {where} was lost: the server stopped or the network failed'),
    (('could not translate host name', 'Name or service not known', 'nodename nor servname'),
     'no such host: {where}'),
    (('No route to host', 'Network is unreachable'), 'no route to {where}'),
    (('password authentication failed', 'no password supplied'),
     'the server at {where} refused the user name or password'),
    (('does not exist',), 'the server at {where} has no such database or user'),
)


def _created_storage(url: str, engine_kwargs: dict, heartbeat_seconds: int):
  """Optuna's RDBStorage. Commands that start on a fresh database at the same moment (two
  machines joining one study) race to create its tables, and PostgreSQL refuses the
  loser's CREATE TABLE: its next try finds the tables made."""
  for attempt in range(5):
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_seconds,
            grace_period=3 * heartbeat_seconds,
            heartbeat_stale_trial_callback=retry_callback())
    except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
      if attempt == 4:
        raise
      time.sleep(0.5 * (attempt + 1))


def retry_callback():
  """Queues a copy of a trial whose worker stopped. The copy keeps the evaluations the
  original reported: it resumes from the run's checkpoint and reports only the later ones,
  and the pruner judges the trials after it against every evaluation."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
    return optuna.storages.RetryHeartbeatStaleTrialCallback(
        max_retry=RETRIES, inherit_intermediate_values=True)


def _lock_on_begin(engine) -> None:
  """Every SQLite transaction takes the database's write lock first (BEGIN IMMEDIATE,
  SQLAlchemy's documented recipe for pysqlite). Optuna moves a trial from WAITING to RUNNING
  with a SELECT ... FOR UPDATE, which SQLite ignores: without this, two workers could claim
  one trial (Optuna issue #4002)."""
  @sqlalchemy.event.listens_for(engine, 'connect')
  def _no_implicit_transactions(dbapi_connection, _):
    dbapi_connection.isolation_level = None  # pysqlite would BEGIN lazily, after the SELECT

  @sqlalchemy.event.listens_for(engine, 'begin')
  def _begin_immediate(connection):
    connection.exec_driver_sql('BEGIN IMMEDIATE')
  engine.dispose()  # connections opened before (creating the tables) get the hooks too


def first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0] if text else ""}'


# What a storage call raises when the storage is lost (the database or the connection).
STORAGE_ERRORS = (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError)
