"""atomic_files.py on a real full filesystem (a 16 KB tmpfs; root only)."""
import os

import pytest

from cnn_jax import atomic_files
from cnn_jax.engine import events


@pytest.fixture
def tiny_disk(tmpfs):
  return tmpfs('16k')


def test_a_write_that_does_not_fit_leaves_the_old_file_and_no_temporary(tiny_disk):
  path = str(tiny_disk / 'results.json')
  atomic_files.write_text(path, 'old')
  with pytest.raises(atomic_files.DiskError, match=r'cannot write .*results.json: No space'):
    atomic_files.write_bytes(path, b'x' * 100_000)
  assert open(path).read() == 'old'
  assert os.listdir(tiny_disk) == ['results.json']


def test_an_events_file_on_a_full_disk_raises_disk_error_and_closes_quietly(tiny_disk):
  writer = events.EventWriter(str(tiny_disk))
  with pytest.raises(atomic_files.DiskError, match='events.out.tfevents'):
    for step in range(10_000):
      writer.write_scalars(step, {'train/loss': 1.0, 'train/error': 0.5})
      writer.flush()
  writer.close()  # no second error
