"""A second "machine" on this one: a network namespace joined to this one by a veth pair
whose link a test can cut, as a cable pulled or a network that drops every packet.

    with netns.client_namespace() as space:
      server = postgres_server.running_server(listen=(space.host_address,))
      subprocess.Popen(space.command(['python', 'launch.py', ...]))  # runs in the namespace
      space.cut()  # from now on, packets between the two are dropped

Needs root and iproute2's `ip` (CI runs as root on a machine that has it); else the test
skips, or fails where $CNN_JAX_REQUIRE_NETNS=1.
"""
import contextlib
import dataclasses
import os
import shutil
import subprocess
import uuid

import pytest

REQUIRE_ENV = 'CNN_JAX_REQUIRE_NETNS'


@dataclasses.dataclass
class Namespace:
  name: str
  host_link: str
  host_address: str    # this machine's end, where a server listens
  client_address: str  # the namespace's end
  unroutable: str      # an address on the namespace's subnet that nobody holds

  def command(self, argv):
    return ['ip', 'netns', 'exec', self.name, *argv]

  def cut(self):
    """The link goes down: what either side sends now is dropped, without an answer."""
    _ip('link', 'set', self.host_link, 'down')


def _ip(*args, namespace=None):
  command = ['ip', *(('-n', namespace) if namespace else ()), *args]
  done = subprocess.run(command, capture_output=True, text=True)
  if done.returncode:
    raise RuntimeError(f'{" ".join(command)}: {done.stderr.strip()}')


def _skip_or_fail(reason):
  if os.environ.get(REQUIRE_ENV) == '1':
    pytest.fail(f'{reason}; ${REQUIRE_ENV}=1 requires it')
  pytest.skip(reason)


@contextlib.contextmanager
def client_namespace():
  if os.geteuid() != 0 or shutil.which('ip') is None:
    _skip_or_fail('a network namespace needs root and iproute2')
  tag = uuid.uuid4().hex[:6]
  name, host_link, peer = f'cnnjax-{tag}', f'cj{tag}h', f'cj{tag}c'
  subnet = f'10.{100 + int(tag[:2], 16) % 100}.{int(tag[2:4], 16)}'
  space = Namespace(name, host_link, f'{subnet}.1', f'{subnet}.2', f'{subnet}.9')
  try:
    _ip('netns', 'add', name)
  except RuntimeError as error:
    _skip_or_fail(f'cannot make a network namespace here ({error})')
  try:
    _ip('link', 'add', host_link, 'type', 'veth', 'peer', 'name', peer)
    _ip('link', 'set', peer, 'netns', name)
    _ip('addr', 'add', f'{space.host_address}/24', 'dev', host_link)
    _ip('link', 'set', host_link, 'up')
    _ip('addr', 'add', f'{space.client_address}/24', 'dev', peer, namespace=name)
    _ip('link', 'set', peer, 'up', namespace=name)
    _ip('link', 'set', 'lo', 'up', namespace=name)
    yield space
  finally:
    subprocess.run(['ip', 'link', 'del', host_link], capture_output=True)
    subprocess.run(['ip', 'netns', 'del', name], capture_output=True)
