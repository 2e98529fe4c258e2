"""The field table (cnn_jax/config/fields.py): it holds every config field once, agrees with
the modules that implement each choice and traced value, writes docs/CONFIG.md, and lets a
run directory written before a field existed resume and load."""
import json
import os
import subprocess
import sys


from cnn_jax import train
from cnn_jax import trained
from cnn_jax.config import architectures
from cnn_jax.config import field_docs
from cnn_jax.config import fields
from cnn_jax.config import paths
from cnn_jax.data import augment
from cnn_jax.data import datasets
from cnn_jax.engine import grouping
from cnn_jax.layer_impls import choice
from cnn_jax.machine import patience
from cnn_jax.model import cnn
from cnn_jax.model import layer_list
from cnn_jax.optim import optimizers
from experiments import default
from tests.conftest import train_until_first_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_field_of_the_config_is_in_the_table_once():
  flat = paths.flatten(json.loads(default.get_config().to_json()))
  assert sorted(flat) == sorted(fields.BY_PATH)
  assert len(fields.BY_PATH) == len(fields.FIELDS)
  assert {f.role for f in fields.FIELDS} == {fields.PROGRAM, fields.TRACED, fields.EXECUTION}
  assert architectures.base_model().to_dict() == {
      p[len('model.'):]: fields.BY_PATH[p].default for p in fields.BY_PATH
      if p.startswith('model.')}


def test_the_choices_are_what_the_modules_implement():
  choices = lambda path: fields.BY_PATH[path].choices
  assert choices('model.activation') == tuple(cnn.ACTIVATIONS)
  assert choices('model.global_pool') == cnn.GLOBAL_POOL_TYPES
  assert choices('model.kernel_init') == cnn.KERNEL_INITIALIZERS
  assert choices('model.bias_init') == cnn.BIAS_INITIALIZERS
  assert choices('model.batch_norm') == layer_list.BATCH_NORM
  assert choices('model.compute_dtype') == cnn.COMPUTE_DTYPES
  assert choices('optimizer.name') == optimizers.OPTIMIZERS
  assert choices('optimizer.schedule') == optimizers.SCHEDULES
  assert fields.BY_PATH['data.validation'].allowed == ', '.join(datasets.VALIDATION_MODES)
  assert fields.BY_PATH['model.conv_impl'].allowed == ', '.join(choice.CONV_CHOICES)


def test_traced_fields_are_the_ones_the_modules_take_as_values():
  traced = {p for p in fields.paths(fields.TRACED)}
  model = {p.partition('.')[2] for p in traced if p.startswith('model.')}
  assert model <= set(cnn.CNN.__dataclass_fields__)
  assert {p.partition('.')[2] for p in traced if p.startswith('augment.')} == set(augment.FIELDS)
  optimizer = {p.partition('.')[2] for p in traced if p.startswith('optimizer.')}
  assert optimizer == {'learning_rate', 'momentum', 'b1', 'b2', 'eps', 'rms_decay',
                       'initial_accumulator', 'weight_decay'}
  # A traced field that is off at 0 changes the program between 0 and non-zero; others not.
  config = default.get_config()
  for path in sorted(traced - {'seed'}):
    section, _, name = path.partition('.')
    other = config.copy_and_resolve_references()
    other[section][name] = config[section][name] + 0.25
    differs = grouping.program_key(other) != grouping.program_key(config)
    assert differs == (fields.BY_PATH[path].off_at_zero and config[section][name] == 0), path


def test_docs_config_md_is_the_table():
  with open(os.path.join(ROOT, 'docs', 'CONFIG.md')) as f:
    assert f.read() == field_docs.markdown(), 'run: python -m cnn_jax.config.fields > docs/CONFIG.md'
  proc = subprocess.run([sys.executable, '-m', 'cnn_jax.config.fields'], cwd=ROOT,
                        capture_output=True, text=True, timeout=patience(120))
  assert proc.returncode == 0 and proc.stdout == field_docs.markdown()


def test_a_run_written_before_new_fields_resumes_and_loads(tmp_path, tiny_config, mock_mnist):
  tiny_config.model.conv_impl = tiny_config.model.pool_impl = 'xla'
  tiny_config.train.num_epochs = 2.0
  train_until_first_checkpoint(tiny_config, str(tmp_path))
  # config.json as a run of last month wrote it: no batch norm, precision, smoothing or
  # augmentation fields.
  path = tmp_path / 'config.json'
  saved = json.loads(path.read_text())
  for section, name in (('model', 'batch_norm'), ('model', 'batch_norm_momentum'),
                        ('model', 'batch_norm_epsilon'), ('model', 'compute_dtype'),
                        ('train', 'label_smoothing')):
    del saved[section][name]
  del saved['augment']
  path.write_text(json.dumps(saved))
  assert trained.load(str(tmp_path)).config.model.batch_norm == 'none'
  resumed = train.train_and_evaluate(tiny_config, str(tmp_path))
  assert resumed['status'] == 'ok' and resumed['steps'] == 16
