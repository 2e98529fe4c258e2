"""A config by field path ('model.activation' for config.model.activation), walked once here:
flattened (grouping's program keys, resumption's comparison, the HParams dashboard, a
report's differences, a sweep's digest) and read at a path."""
from __future__ import annotations

import json
from typing import Any, Callable

import ml_collections


def hashable(value: Any) -> Any:
  """A leaf as `flatten` keeps it by default: a list (a config's JSON holds tuples as lists)
  becomes its JSON text, so that values can be compared, hashed and digested as text."""
  return json.dumps(value) if isinstance(value, list) else value


def flatten(tree, prefix: str = '', leaf: Callable[[Any], Any] = hashable) -> dict[str, Any]:
  """{'model': {'activation': 'relu'}} -> {'model.activation': 'relu'}, of a ConfigDict or a
  dict (a config's JSON), each leaf passed through `leaf`."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      flat.update(flatten(value, f'{prefix}{key}.', leaf))
    else:
      flat[f'{prefix}{key}'] = leaf(value)
  return flat


def value_at(config, path: str) -> Any:
  """The value at 'section.field' of a ConfigDict or a dict."""
  for part in path.split('.'):
    config = config[part]
  return config
