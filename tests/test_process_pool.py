"""Sweep workers on GPUs, decided before JAX starts: which GPU each worker sees, and the share
of a shared GPU's memory it may preallocate (JAX's 75% default let only one start)."""
from cnn_jax.sweeps import process_pool


def test_the_gpus_come_from_cuda_visible_devices_else_the_driver(tmp_path):
  driver = tmp_path / 'gpus'
  driver.mkdir()
  for bus in ('0000:17:00.0', '0000:65:00.0'):
    (driver / bus).mkdir()
  assert process_pool.visible_gpus({}, str(driver)) == ['0', '1']
  assert process_pool.visible_gpus({'CUDA_VISIBLE_DEVICES': '3, 1'}, str(driver)) == ['3', '1']
  assert process_pool.visible_gpus({'CUDA_VISIBLE_DEVICES': ''}, str(driver)) == []  # hidden
  assert process_pool.visible_gpus({}, str(tmp_path / 'no-driver')) == []


def test_workers_take_gpus_in_turn_and_share_one_s_memory():
  env = process_pool.gpu_environment
  assert [env(i, 2, ['0', '1'], {}) for i in range(2)] == [
      {'CUDA_VISIBLE_DEVICES': '0'}, {'CUDA_VISIBLE_DEVICES': '1'}]  # one each: JAX's default
  assert [env(i, 3, ['0', '1'], {}) for i in range(3)] == [
      {'CUDA_VISIBLE_DEVICES': '0', 'XLA_PYTHON_CLIENT_MEM_FRACTION': '0.450'},
      {'CUDA_VISIBLE_DEVICES': '1'},
      {'CUDA_VISIBLE_DEVICES': '0', 'XLA_PYTHON_CLIENT_MEM_FRACTION': '0.450'}]
  assert env(0, 8, ['0'], {})['XLA_PYTHON_CLIENT_MEM_FRACTION'] == '0.113'
  # The user's own memory settings win; without GPUs, nothing is set.
  assert env(0, 2, ['0'], {'XLA_PYTHON_CLIENT_PREALLOCATE': 'false'}) == {
      'CUDA_VISIBLE_DEVICES': '0'}
  assert env(1, 2, [], {}) == {}
