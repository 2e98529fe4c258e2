"""The optional tcmalloc preload: silent when the library is absent, a re-exec with LD_PRELOAD
when present, and CI runs the tests as a fresh machine would (no preload anywhere)."""
import os
import sys

import pytest

from cnn_jax import allocator


class Exec(Exception):
  pass


def fake_execve(path, argv, env):
  raise Exec(path, argv, env)


def test_an_absent_tcmalloc_prints_nothing_and_the_log_says_why(monkeypatch, capsys):
  monkeypatch.delenv('CNN_JAX_NO_TCMALLOC', raising=False)
  monkeypatch.delenv('LD_PRELOAD', raising=False)
  monkeypatch.setattr(allocator, 'find_tcmalloc', lambda: None)
  monkeypatch.setattr(os, 'execve', fake_execve)
  allocator.use_tcmalloc_if_available()  # returns: no re-exec
  assert capsys.readouterr() == ('', '')
  assert allocator.name() == 'glibc malloc'
  assert 'apt-get install libtcmalloc-minimal4' in allocator.described()


def test_a_present_tcmalloc_reexecutes_the_command_with_it_preloaded(monkeypatch):
  monkeypatch.delenv('CNN_JAX_NO_TCMALLOC', raising=False)
  monkeypatch.setenv('LD_PRELOAD', '/lib/other.so')
  monkeypatch.setattr(allocator, 'find_tcmalloc', lambda: '/lib/libtcmalloc_minimal.so.4')
  monkeypatch.setattr(os, 'execve', fake_execve)
  with pytest.raises(Exec) as raised:
    allocator.use_tcmalloc_if_available()
  _, argv, env = raised.value.args
  assert env['LD_PRELOAD'] == '/lib/libtcmalloc_minimal.so.4:/lib/other.so'
  assert argv[1:] == sys.argv
  # Opted out, or already preloaded: no second exec.
  for name, value in (('CNN_JAX_NO_TCMALLOC', '1'), ('LD_PRELOAD', '/x/libtcmalloc.so')):
    with monkeypatch.context() as patch:
      patch.setenv(name, value)
      allocator.use_tcmalloc_if_available()


@pytest.mark.skipif(not os.environ.get('CI'), reason='only CI promises a fresh machine')
def test_ci_runs_the_tests_without_tcmalloc():
  # .ci/run's green run must mean what a user without libtcmalloc-minimal4 gets.
  assert os.environ.get('CNN_JAX_NO_TCMALLOC') == '1'
  with open('/proc/self/maps') as maps:
    assert 'tcmalloc' not in maps.read()
