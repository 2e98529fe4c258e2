"""Exploit and explore of population-based training (Jaderberg et al. 2017, "Population Based
Training of Neural Networks") on a vmapped group's stacked state, on the device.

A population is a vmapped group (engine/program.py): its members share one compiled step and
the numbers PBT changes are traced values (the state's 'traced', cnn_jax/member_view.py). So
an exploit, a member taking another's state, is a gather along the member axis, and an
explore, a traced number multiplied by a factor or drawn again from its space, is arithmetic
on a (members,) array: neither changes the program, and `compiled(rule)` is one program for
every interval of a run.

Truncation selection: the members ranked in the bottom `quantile` (a diverged member's NaN
score ranks last) each copy a member drawn uniformly from the top `quantile`. A copying
member takes the whole state that decides what it computes (COPIED: parameters, batch
statistics, optimizer state, traced values) and keeps its own key (its dropout masks and
augmentation draws) and train sums; its data order is the loop's, per member, and stays its
own too.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

COPIED = ('params', 'model_state', 'opt_state', 'traced')


@dataclasses.dataclass(frozen=True)
class Bounds:
  """The space of one traced number: [low, high], explored on a log scale when `log`."""
  section: str
  field: str
  low: float
  high: float
  log: bool = False


@dataclasses.dataclass(frozen=True)
class Rule:
  """How the population exploits and explores (sweeps/pbt.py builds it from a checked
  declaration). `factors`: what an explored number is multiplied by, one drawn per member;
  `resample_probability`: the chance it is drawn from its space instead."""
  bounds: tuple[Bounds, ...]
  quantile: float = 0.25
  factors: tuple[float, ...] = (0.8, 1.2)
  resample_probability: float = 0.25
  maximize: bool = False


def truncated(members: int, quantile: float) -> int:
  """How many members the top (and the bottom) quantile holds: at least one."""
  return max(1, int(members * quantile))


def select(key: jax.Array, scores: jax.Array, rule: Rule) -> jax.Array:
  """(members,) int32: whose state each member takes (itself, outside the bottom quantile)."""
  members = scores.shape[0]
  worst = -jnp.inf if rule.maximize else jnp.inf
  scores = jnp.where(jnp.isnan(scores), worst, scores)
  order = jnp.argsort(-scores if rule.maximize else scores, stable=True)  # best first
  rank = jnp.zeros(members, jnp.int32).at[order].set(jnp.arange(members, dtype=jnp.int32))
  count = truncated(members, rule.quantile)
  drawn = order[:count][jax.random.randint(key, (members,), 0, count)]
  return jnp.where(rank >= members - count, drawn, jnp.arange(members, dtype=jnp.int32))


def exploit(state: dict, source: jax.Array) -> dict:
  """Each member's COPIED state taken from member `source[i]` (a gather per leaf)."""
  return {**state, **{part: jax.tree_util.tree_map(lambda a: a[source], state[part])
                      for part in COPIED if part in state}}


def explore(key: jax.Array, traced: dict, moved: jax.Array, rule: Rule) -> dict:
  """The traced values with each bounded number of the `moved` members perturbed: times a
  factor, or with `resample_probability` drawn from its space; always within its bounds."""
  traced = {section: dict(values) for section, values in traced.items()}
  factors = jnp.asarray(rule.factors, jnp.float32)
  for bounds, field_key in zip(rule.bounds, jax.random.split(key, len(rule.bounds))):
    value = traced[bounds.section][bounds.field]
    pick, coin, draw = jax.random.split(field_key, 3)
    multiplied = value * factors[jax.random.randint(pick, value.shape, 0, len(rule.factors))]
    if bounds.log:
      low, high = jnp.log(bounds.low), jnp.log(bounds.high)
      drawn = jnp.exp(jax.random.uniform(draw, value.shape, minval=low, maxval=high))
    else:
      drawn = jax.random.uniform(draw, value.shape, minval=bounds.low, maxval=bounds.high)
    resampled = jax.random.uniform(coin, value.shape) < rule.resample_probability
    low, high = _float32_within(bounds.low, bounds.high)
    new = jnp.clip(jnp.where(resampled, drawn, multiplied), low, high)
    traced[bounds.section][bounds.field] = jnp.where(moved, new, value).astype(value.dtype)
  return traced


def _float32_within(low: float, high: float) -> tuple[np.float32, np.float32]:
  """The float32 numbers nearest [low, high] from inside: a traced value is float32, and the
  float32 nearest an end may lie just outside it (0.6 becomes 0.6000000238)."""
  low32, high32 = np.float32(low), np.float32(high)
  return (low32 if low32 >= low else np.nextafter(low32, np.float32(np.inf)),
          high32 if high32 <= high else np.nextafter(high32, np.float32(-np.inf)))


def exploit_and_explore(key: jax.Array, state: dict, scores: jax.Array,
                        rule: Rule) -> tuple[dict, jax.Array]:
  """One interval's selection: (the new state, whose state each member took)."""
  select_key, explore_key = jax.random.split(key)
  source = select(select_key, scores, rule)
  state = exploit(state, source)
  moved = source != jnp.arange(source.shape[0])
  return {**state, 'traced': explore(explore_key, state['traced'], moved, rule)}, source


def selection_key(seed: int, interval: int) -> np.ndarray:
  """The raw key of an interval's selection, (seed, interval number): a resumed population
  draws as an uninterrupted one. Raw uint32 data, placed like any host array (a typed key
  cannot cross processes as a jit argument)."""
  return np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(seed), interval)))


@functools.lru_cache(maxsize=None)
def compiled(rule: Rule, members=None, replicated=None):
  """exploit_and_explore jitted for `rule`, taking selection_key's raw key: one program for
  every interval of a run, the state donated as the train step's is. `members` and
  `replicated` (a placement's shardings, engine/devices.py) keep the state where the train
  step takes it and the key and scores on every device."""
  def exploit_and_explore_on_device(key_data, state, scores):
    return exploit_and_explore(jax.random.wrap_key_data(key_data), state, scores, rule)
  placed = {} if members is None else dict(in_shardings=(replicated, members, replicated),
                                           out_shardings=(members, replicated))
  return jax.jit(exploit_and_explore_on_device, donate_argnums=(1,), **placed)
