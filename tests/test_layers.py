"""Every convolution and pooling implementation computes XLA's function: forward and gradients,
over kernels, strides, paddings, channels and odd image sizes; and the choice between them."""
import itertools
import json
import os
import statistics
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import errors
from cnn_jax import machine
from cnn_jax import time_layers
from cnn_jax.config import architectures
from cnn_jax.config import files as experiment_files
from cnn_jax.config import validation
from cnn_jax.layer_impls import cache
from cnn_jax.layer_impls import choice
from cnn_jax.layer_impls import implementations
from cnn_jax.layer_impls import resolution
from cnn_jax.layer_impls import timing
from cnn_jax.model import cnn
from cnn_jax.model import timed_layers
from cnn_jax.machine import patience

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = dict(rtol=2e-5, atol=2e-5)

# (image height, width, in channels), (kernel, stride), padding, out channels: every kernel,
# stride and padding kind meets odd, even and non-square images and 1 or several channels.
CONV_GRID = [
    (image, window, padding, features)
    for (image, window, padding), features in zip(
        itertools.product([(7, 7, 1), (9, 6, 3)], [(1, 1), (3, 2), (5, 1), (2, 3)],
                          ['VALID', 'SAME', 2]),
        itertools.cycle([2, 5, 1]))
]


def _random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _value_and_grads(function, *args):
  """The output and the gradient of <output, g> for a fixed random g, for every argument:
  one compiled program (op by op, the slice-based layers take seconds to dispatch)."""
  g = _random(jax.eval_shape(function, *args).shape, seed=99)
  return jax.jit(lambda *a: (function(*a), jax.grad(
      lambda *a: jnp.sum(function(*a) * g), argnums=tuple(range(len(a))))(*a)))(*args)


@pytest.mark.parametrize('image,window,padding,features', CONV_GRID)
def test_every_convolution_matches_xla_forward_and_gradients(image, window, padding, features):
  (k, stride), (h, w, c) = window, image
  x, kernel = _random((2, h, w, c), 0), _random((k, k, c, features), 1)
  expected = _value_and_grads(
      lambda x, k_: implementations.conv_xla(x, k_, stride, padding), x, kernel)
  for name, impl in implementations.CONV_IMPLS.items():
    out, grads = _value_and_grads(lambda x, k_, impl=impl: impl(x, k_, stride, padding),
                                  x, kernel)
    assert out.shape == expected[0].shape, name
    np.testing.assert_allclose(out, expected[0], **TOLERANCE, err_msg=name)
    for got, want, what in zip(grads, expected[1], ('input', 'kernel')):
      np.testing.assert_allclose(got, want, **TOLERANCE, err_msg=f'{name} {what} gradient')


POOL_GRID = list(itertools.product(
    [(7, 7, 2), (8, 9, 1)], ['max', 'avg'], [(2, 2), (3, 3), (3, 2)], ['VALID', 'SAME', 1]))


@pytest.mark.parametrize('image,kind,window,padding', POOL_GRID)
def test_every_pooling_matches_xla_forward_and_gradient(image, kind, window, padding):
  (k, stride), (h, w, c) = window, image
  # Distinct values: max pooling's gradient at a tie is a convention (XLA gives it to one
  # input, a reduction splits it), and ties have probability zero here.
  x = _random((2, h, w, c), 0)
  expected = _value_and_grads(lambda x: implementations.pool_xla(x, kind, k, stride, padding), x)
  names = implementations.pool_impls_for(k, stride)
  assert ('reshape' in names) == (k == stride)
  for name in names:
    impl = implementations.POOL_IMPLS[name]
    out, (grad,) = _value_and_grads(lambda x, impl=impl: impl(x, kind, k, stride, padding), x)
    np.testing.assert_allclose(out, expected[0], **TOLERANCE, err_msg=name)
    np.testing.assert_allclose(grad, expected[1][0], **TOLERANCE, err_msg=f'{name} gradient')


def test_a_mixed_convolution_takes_each_part_from_its_implementation():
  x, kernel = _random((3, 9, 9, 2), 0), _random((3, 3, 2, 4), 1)
  expected = _value_and_grads(lambda x, k: implementations.conv_xla(x, k, 2, 'SAME'), x, kernel)
  for impl in (implementations.ConvImpl('shifted', 'im2col', 'xla'),
               implementations.ConvImpl('xla', 'shifted', 'im2col')):
    mixed = lambda x, k, impl=impl: implementations.conv(x, k, 2, 'SAME', impl)
    out, grads = _value_and_grads(mixed, x, kernel)
    np.testing.assert_allclose(out, expected[0], **TOLERANCE)
    for got, want in zip(grads, expected[1]):
      np.testing.assert_allclose(got, want, **TOLERANCE)
    # Under vmap too, as a sweep group runs it: member i computes what it computes alone.
    xs, kernels = jnp.stack([x, 2 * x]), jnp.stack([kernel, -kernel])
    stacked = jax.vmap(lambda x, k, mixed=mixed: jax.grad(
        lambda k: jnp.sum(mixed(x, k) ** 2))(k))(xs, kernels)
    alone = jax.grad(lambda k: jnp.sum(implementations.conv_xla(2 * x, k, 2, 'SAME') ** 2))(-kernel)
    np.testing.assert_allclose(stacked[1], alone, rtol=1e-4, atol=1e-4)


def test_the_conv_module_initialises_as_flax_nn_conv():
  x = jnp.zeros((1, 9, 9, 3))
  init = jax.nn.initializers.glorot_uniform()
  ours = cnn.Conv(4, 3, 1, 'SAME', implementations.ConvImpl.everywhere('shifted'), init,
                  jax.nn.initializers.normal(0.1)).init(jax.random.key(3), x)
  flax_conv = nn.Conv(4, (3, 3), padding='SAME', kernel_init=init,
                      bias_init=jax.nn.initializers.normal(0.1)).init(jax.random.key(3), x)
  for ours_leaf, flax_leaf in zip(jax.tree_util.tree_leaves(ours),
                                  jax.tree_util.tree_leaves(flax_conv)):
    np.testing.assert_array_equal(ours_leaf, flax_leaf)


def _t2(**overrides):
  model = architectures.cntk_pool()
  model.update(overrides)
  return model


def _resolve(model_cfg, image_shape, batch, **options):
  """What a Program runs for this model: its layers' implementations resolved."""
  return resolution.resolve(timed_layers.named_layers(model_cfg, image_shape),
                            model_cfg.conv_impl, model_cfg.pool_impl, batch, **options)


def test_a_named_implementation_is_used_everywhere(tmp_path):
  chosen = _resolve(_t2(conv_impl='im2col', pool_impl='reshape'), (28, 28, 1), 8,
                    path=str(tmp_path / 'choices.json'))
  assert chosen.conv == (implementations.ConvImpl.everywhere('im2col'),) * 2
  assert chosen.pool == ('reshape', 'reshape')
  assert chosen.describe() == {'conv0': 'im2col', 'conv1': 'im2col', 'pool0': 'reshape',
                               'pool1': 'reshape'}
  assert not (tmp_path / 'choices.json').exists()  # nothing measured


def test_a_description_reads_back_as_the_implementations_it_describes():
  impls = choice.LayerImpls(
      (implementations.ConvImpl('shifted', 'xla', 'im2col'),
       implementations.ConvImpl.everywhere('im2col'), implementations.ConvImpl.everywhere('xla')),
      ('reshape', 'xla', 'xla'))
  described = impls.describe()
  assert described['conv0'] == 'shifted/xla/im2col' and described['conv1'] == 'im2col'
  assert choice.LayerImpls.from_description(json.loads(json.dumps(described))) == impls
  assert choice.LayerImpls.from_description({}) == choice.LayerImpls()


@pytest.mark.parametrize('described, message', [
    ({'conv0': 'fft', 'pool0': 'xla'}, "executor.layers conv0='fft' is not known; allowed: "
                                       'one of xla, im2col, shifted'),
    ({'conv0': 'xla/shifted', 'pool0': 'xla'}, "executor.layers conv0='xla/shifted' is not"),
    ({'conv0': 'xla', 'pool0': 'median'}, "executor.layers pool0='median' is not known; "
                                          'allowed: xla, reshape'),
    ({'conv0': 'xla', 'pool1': 'xla'}, 'must name each conv layer and its pooling once: '
                                       'conv0, pool0'),
])
def test_a_bad_description_names_the_layer(described, message):
  with pytest.raises(errors.ConfigError, match=message.replace('(', r'\(')):
    choice.LayerImpls.from_description(described)


def test_auto_measures_each_layer_once_per_machine(tmp_path, monkeypatch):
  path = str(tmp_path / 'choices.json')
  model = _t2(conv_features=(2, 3), pool_type=('max', 'none'))
  first = _resolve(model, (12, 12, 1), 4, path=path)
  with open(path) as f:
    measured = json.load(f)[machine.machine_key()]
  # Two convolutions and one pooling; the first layer's input gradient is not timed.
  assert sorted(json.loads(key)[0] for key in measured) == ['conv', 'conv', 'pool']
  conv0 = next(v for k, v in measured.items() if json.loads(k)[-1] is False)
  assert conv0['version'] == cache.VERSION and conv0['rounds'] == timing.ROUNDS
  assert set(conv0['ms']) == set(conv0['median_ms']) == {'forward', 'kernel_grad'}
  assert set(conv0['ms']['forward']) == set(implementations.CONV_IMPLS)
  assert all(conv0['ms']['forward'][n] <= conv0['median_ms']['forward'][n]
             for n in implementations.CONV_IMPLS)
  assert first.conv[0].forward == choice.choose(conv0['ms']['forward'])
  assert first.pool[1] == 'xla'  # no pooling after conv1

  def no_timing(*args):
    raise AssertionError('measured again')
  monkeypatch.setattr(timing, 'time_conv', no_timing)
  monkeypatch.setattr(timing, 'time_pool', no_timing)
  assert _resolve(model, (12, 12, 1), 4, path=path) == first
  with pytest.raises(AssertionError, match='measured again'):  # another batch is another key
    _resolve(model, (12, 12, 1), 8, path=path)


@pytest.mark.parametrize('ms, chosen', [
    ({'xla': 1.0, 'im2col': 0.95, 'shifted': 1.3}, 'xla'),       # 5% faster: not enough
    ({'xla': 1.0, 'im2col': 0.7, 'shifted': 1.3}, 'im2col'),     # 30% faster: wins
    ({'xla': 1.0, 'im2col': 0.91, 'shifted': 0.7}, 'shifted'),
    ({'xla': 1.0, 'im2col': 0.72, 'shifted': 0.7}, 'im2col'),    # a near-tie of two: the first
    ({'xla': 1.0, 'im2col': 0.92, 'shifted': 0.85}, 'shifted'),  # im2col does not beat XLA
    ({'xla': 0.66, 'im2col': 0.7, 'shifted': 0.6}, 'xla'),       # within 10% of the fastest
    ({'xla': 1.0, 'reshape': 0.95}, 'xla'),
    ({'xla': 1.0, 'reshape': 0.7}, 'reshape'),
    ({'im2col': 1.0, 'shifted': 0.95}, 'im2col'),                # no XLA among them
])
def test_a_candidate_leaves_xla_s_own_only_by_the_margin(ms, chosen):
  assert choice.MARGIN == 0.10
  assert choice.choose(ms) == chosen


def _fake_timings(times):
  """timing.timings that measures nothing: every part of every layer takes `times`
  (candidate -> ms), fastest and median alike."""
  def timings(candidates, args, members):
    ms = {name: times[name] for name in candidates}
    return ms, dict(ms), timing.ROUNDS
  return timings


@pytest.mark.parametrize('im2col, conv', [(0.95, 'xla'), (0.7, 'im2col')])
def test_the_margin_rule_decides_what_resolve_runs(tmp_path, monkeypatch, im2col, conv):
  monkeypatch.setattr(timing, 'timings', _fake_timings(
      {'xla': 1.0, 'im2col': im2col, 'shifted': 1.2, 'reshape': 0.95}))
  chosen = _resolve(_t2(), (28, 28, 1), 8, path=str(tmp_path / 'choices.json'))
  assert chosen.conv == (implementations.ConvImpl.everywhere(conv),) * 2
  assert chosen.pool == ('xla', 'xla')  # reshape only 5% faster


def test_the_log_says_when_and_on_what_timings_each_layer_was_chosen(tmp_path, monkeypatch,
                                                                     caplog):
  path = str(tmp_path / 'choices.json')
  monkeypatch.setattr(timing, 'timings', _fake_timings(
      {'xla': 1.0, 'im2col': 0.7, 'shifted': 0.95, 'reshape': 0.5}))
  caplog.set_level('INFO')
  _resolve(_t2(), (28, 28, 1), 8, path=path)
  timing_lines = [r.getMessage() for r in caplog.records
                  if r.getMessage().startswith('Timing ')]
  assert timing_lines == [  # timing is a visible step, said before it starts
      f'Timing the implementations of 4 layers for this machine (once; cached in {path}): '
      'conv0, pool0, conv1, pool1']
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('Layer ')]
  assert lines[0] == (
      'Layer conv0 (28x28x1 -> 8, 5x5/1 SAME; batch 8, 1 member) measured now, fastest ms of '
      '21 rounds: forward xla 1.00 im2col 0.70 shifted 0.95 -> im2col (medians 1.00 0.70 '
      f'0.95); kernel_grad xla 1.00 im2col 0.70 shifted 0.95 -> im2col (medians 1.00 0.70 '
      f'0.95); cached in {path}')
  assert lines[1].startswith('Layer pool0 (28x28x8, max 2/2 VALID; batch 8, 1 member) '
                             'measured now, fastest ms of 21 rounds: train xla 1.00 reshape '
                             '0.50 -> reshape')
  assert 'input_grad xla 1.00 im2col 0.70 shifted 0.95 -> im2col' in lines[2]
  assert [line.split(' (')[0] for line in lines[:4]] == [
      'Layer conv0', 'Layer pool0', 'Layer conv1', 'Layer pool1']
  caplog.clear()
  _resolve(_t2(), (28, 28, 1), 8, path=path)
  assert not any(r.getMessage().startswith('Timing ') for r in caplog.records)
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('Layer')]
  assert len(lines) == 2 and lines[0].startswith(
      f'Layers conv0, pool0, conv1, pool1 (batch 8, 1 member) read from the cache {path} '
      '(measured 20')
  assert lines[0].endswith('not measured now; `python -m cnn_jax.time_layers '
                           '--config=<experiment>` measures them again')


def test_an_entry_of_the_one_shot_timing_is_measured_again(tmp_path, monkeypatch):
  path = tmp_path / 'choices.json'
  model = _t2()
  conv0 = timed_layers.named_layers(model, (28, 28, 1))['conv0']
  old = {'forward': {'xla': 9.0, 'im2col': 9.0, 'shifted': 1e-4}, 'input_grad': {},
         'kernel_grad': {'xla': 9.0, 'im2col': 9.0, 'shifted': 1e-4}}  # version 1, seconds
  path.write_text(json.dumps({machine.machine_key(): {conv0.key(8, 1): old}}))
  monkeypatch.setattr(timing, 'timings', _fake_timings(
      {'xla': 1.0, 'im2col': 0.7, 'shifted': 0.95, 'reshape': 0.5}))
  chosen = _resolve(model, (28, 28, 1), 8, path=str(path))
  assert chosen.conv[0] == implementations.ConvImpl.everywhere('im2col')  # not the old 'shifted'
  entry = json.loads(path.read_text())[machine.machine_key()][conv0.key(8, 1)]
  assert entry['version'] == cache.VERSION and entry['ms']['forward']['shifted'] == 0.95


def test_rounds_rotate_and_one_huge_outlier_moves_no_time():
  now, order = [0.0], []
  durations = {'xla': [1.0] * 9, 'im2col': [0.8] * 9, 'shifted': [0.9] * 9}
  durations['im2col'][4] = 1000.0  # one call of im2col caught by a burst of load
  left = {name: iter(d) for name, d in durations.items()}

  def call(name):
    order.append(name)
    now[0] += next(left[name])
  calls = {name: (lambda name=name: call(name)) for name in durations}
  samples = timing.interleaved(calls, 9, clock=lambda: now[0])
  # Each round calls every candidate once, starting one further along each time.
  assert [order[3 * r] for r in range(4)] == ['xla', 'im2col', 'shifted', 'xla']
  assert all(sorted(order[3 * r:3 * r + 3]) == sorted(durations) for r in range(9))
  assert samples['im2col'][4] == pytest.approx(1000.0)
  fastest = {name: min(s) for name, s in samples.items()}
  assert fastest == pytest.approx({'xla': 1.0, 'im2col': 0.8, 'shifted': 0.9})
  assert statistics.median(samples['im2col']) == pytest.approx(0.8)
  assert choice.choose(fastest) == 'im2col'


TINY_EXPERIMENT = """
from experiments import default

def get_config():
  config = default.get_config()
  config.model.conv_features = (2, 3)
  config.train.batch_size = 16
  return config
"""


def _time_layers_command(args, cache_root):
  env = dict(os.environ, CNN_JAX_CACHE=str(cache_root))
  return subprocess.run([sys.executable, '-m', 'cnn_jax.time_layers', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=patience(300), env=env)


def test_the_command_measures_a_config_s_layers_again(tmp_path, monkeypatch):
  experiment = tmp_path / 'tiny.py'
  experiment.write_text(TINY_EXPERIMENT)
  cache_root = tmp_path / 'cache'
  cache_root.mkdir()
  path = cache_root / cache.MEASUREMENTS
  config = experiment_files.load_config(str(experiment))
  config.train.batch_size = 4  # as the command's override below
  named = timed_layers.named_layers(config.model, (28, 28, 1))
  keys = {name: layer.key(4, 1) for name, layer in named.items()}
  stale = {'version': cache.VERSION, 'rounds': 21, 'measured': '2026-01-01 00:00',
           'ms': {'train': {'xla': 1000.0, 'reshape': 1.0}},
           'median_ms': {'train': {'xla': 1000.0, 'reshape': 1.0}}}
  mine = machine.machine_key()
  path.write_text(json.dumps({mine: {keys['pool0']: stale, 'another layer': stale},
                              'cpu|another machine|2 cores': {keys['pool0']: stale}}))
  proc = _time_layers_command([f'--config={experiment}', '--config.train.batch_size=4'],
                              cache_root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert lines[0].startswith(f'cntk_pool ({experiment}), batch 4 per device, 1 member, on '
                             f'{mine}; ms per call')
  assert [line.split(' | ')[0] for line in lines[3:10]] == [
      '| conv0', '| conv0', '| pool0', '| conv1', '| conv1', '| conv1', '| pool1']
  assert lines[4].startswith('| conv0 | 28x28x1 -> 2, 5x5/1 SAME | kernel_grad | ')
  assert lines[4].endswith(' | 21 | now |')
  assert lines[-2].startswith('layers: conv0=') and ', pool1=' in lines[-2]
  assert lines[-1] == f'cache: {path} (4 entries written)'
  written = json.loads(path.read_text())
  assert written[mine][keys['pool0']]['measured'] != stale['measured']  # rewritten
  assert written[mine][keys['pool0']]['ms']['train']['xla'] < 1000
  assert set(written[mine]) == {*keys.values(), 'another layer'}
  assert written['cpu|another machine|2 cores'] == {keys['pool0']: stale}

  # --all first forgets this machine's other layers; another machine's stay. In process,
  # timing nothing.
  monkeypatch.setattr(timing, 'timings', _fake_timings(
      {'xla': 1.0, 'im2col': 0.7, 'shifted': 0.95, 'reshape': 0.5}))
  config.model.conv_impl = 'xla'
  table = time_layers.remeasure(config, 'tiny.py', forget_all=True, path=str(path))
  written = json.loads(path.read_text())
  assert set(written[mine]) == set(keys.values()) and 'cpu|another machine|2 cores' in written
  assert f'cache: {path} (4 entries written, 5 of this machine forgotten first)' in table
  assert '| conv1 | 14x14x2 -> 3, 5x5/1 SAME | input_grad | 1.00 (1.00) | 0.70 (0.70) | ' \
         '0.95 (0.95) | - | im2col | 21 | now |' in table
  assert table.splitlines()[-1] == ("note: the config sets model.conv_impl='xla'; its runs "
                                    'use that, not these choices')
  shown = time_layers.remeasure(config, 'tiny.py', again=False, path=str(path))
  assert f'cache: {path} (0 entries written)' in shown and ' | now |' not in shown


@pytest.mark.parametrize('args, message', [
    (['--config=nowhere.py'], 'error: --config=nowhere.py: no such experiment file'),
    (['--config=experiments/pool.py', '--config.model.conv_featurs=1'],
     "error: --config.model.conv_featurs: 'conv_featurs' is not a config field; Did you mean "
     '"conv_features" instead of "conv_featurs"?'),
    (['--config=experiments/pool.py', '--config.seed=-5'],
     'error: seed=-5 must be between 0 and 4294967295'),
    (['--config=experiments/pool.py', '--members=0'],
     'error: --members=0: allowed is a count of 1 or more'),
])
def test_the_command_s_bad_input_is_one_line_and_status_2(tmp_path, args, message):
  proc = _time_layers_command(args, tmp_path)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == message, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr and proc.stdout == ''
  assert not (tmp_path / cache.MEASUREMENTS).exists()


def test_the_model_runs_the_resolved_implementations():
  model_cfg = _t2(conv_features=(2, 3))
  x = _random((2, 28, 28, 1), 0)
  params = cnn.build_model(model_cfg).init(jax.random.key(0), x, train=False)
  reference = cnn.build_model(model_cfg).apply(params, x, train=False)
  impls = choice.LayerImpls((implementations.ConvImpl('shifted', 'im2col', 'xla'),
                             implementations.ConvImpl.everywhere('im2col')), ('reshape', 'reshape'))
  model = cnn.build_model(model_cfg, impls=impls)
  np.testing.assert_allclose(model.apply(params, x, train=False), reference, **TOLERANCE)
  jaxpr = str(jax.make_jaxpr(lambda p: model.apply(p, x, train=False))(params))
  assert 'conv_general_dilated' not in jaxpr and 'reduce_window' not in jaxpr


@pytest.mark.parametrize('field,value,message', [
    ('conv_impl', 'fft', "model.conv_impl='fft'"),
    ('pool_impl', 'reshape', "model.pool_impl='reshape' cannot compute pool1"),
])
def test_an_impossible_implementation_is_refused(field, value, message):
  model = _t2(pool_window=(2, 3), pool_strides=(2, 2))
  model[field] = value
  with pytest.raises(errors.ConfigError, match=message.replace('(', r'\(')):
    validation.validate_model(model)
