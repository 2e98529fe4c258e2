"""Short runs of each tutorial family on the real MNIST in ../shared/data (skipped without it).

Each uses its tutorial's real recipe and split for a few hundred steps: the split sizes must
be the tutorial's, and the error must fall far below chance (90%). The CNTK family (T1/T2)
is checked through launch.py in test_launch.py. Full-length figures: docs/REPRODUCTION.md.
"""
import pytest

from cnn_jax import train
from cnn_jax.config import files as experiment_files
from cnn_jax.engine import results
from tests.conftest import real_data_or_skip

pytestmark = pytest.mark.realdata

# experiment -> (steps, (train, validation, test) sizes, test error bound). Seed 0; the test
# errors measured with XLA's layers on 2026-12-01 follow each line.
SHORT_RUNS = {
    'experiments/keras_cnn.py': (15, (60_000, 2_000, 8_000), 0.25),        # 14.64%
    'experiments/lenet_small.py': (391, (50_000, 10_000, 10_000), 0.15),   # one epoch: 11.41%
    'experiments/softmax.py': (1_000, (55_000, 5_000, 10_000), 0.105),     # the whole run
    'experiments/tf_deep_cnn.py': (100, (55_000, 5_000, 10_000), 0.2),     # 14.65%
}


@pytest.mark.parametrize('spec', sorted(SHORT_RUNS))
def test_short_real_run(spec, tmp_path):
  data_dir = real_data_or_skip()
  steps, sizes, bound = SHORT_RUNS[spec]
  config = experiment_files.load_config(spec)
  config.data.data_dir = data_dir
  config.train.num_train_steps = steps
  config.train.checkpoint_every_epochs = 0
  config.train.pictures = 'none'  # test_launch's real T2 run checks them
  # XLA's layers: 'auto' would time each layer shape first (20 s for keras_cnn's in a fresh
  # cache), which test_layers covers; the real T2 run of test_launch goes through 'auto'.
  config.model.conv_impl = config.model.pool_impl = 'xla'
  out = train.train_and_evaluate(config, str(tmp_path))
  assert out['status'] == 'ok' and out['steps'] == steps
  assert out['num_examples'] == dict(zip(('train', 'validation', 'test'), sizes))
  test_error = results.final_metric(out, 'test', 'error')
  assert test_error < bound, test_error
