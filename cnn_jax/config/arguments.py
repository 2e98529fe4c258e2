"""Arguments after the colon of a config path: `experiments/pool.py:variant=slides`.

ml_collections passes the text after ':' to `get_config(arg)`; this turns 'a=1,b=x' into a
ConfigDict over the file's declared defaults, so a misspelt key or a bad value is an error
naming the key and the allowed ones rather than a silently ignored word.
"""
from __future__ import annotations

import ml_collections


def parse(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  parsed = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, sep, value = item.partition('=')
    key = key.strip()
    if not sep or key not in defaults:
      allowed = ', '.join(f'{k}=...' for k in defaults) or 'none'
      raise ValueError(f'config argument {item!r} is not understood; allowed: {allowed}')
    parsed[key] = _typed(key, value.strip(), type(defaults[key]))
  return parsed


def _typed(key: str, value: str, kind: type):
  if kind is bool:
    if value.lower() not in ('true', 'false', '1', '0', 'yes', 'no'):
      raise ValueError(f'config argument {key}={value!r} is not understood; allowed values: '
                       'true, false')
    return value.lower() in ('true', '1', 'yes')
  try:
    return kind(value)
  except ValueError:
    wanted = {int: 'an integer', float: 'a number'}.get(kind, kind.__name__)
    raise ValueError(f'config argument {key}={value!r} is not understood; allowed values: '
                     f'{wanted}') from None


def choose(parsed_value: str, field: str, allowed) -> str:
  if parsed_value not in allowed:
    raise ValueError(f'config argument {field}={parsed_value!r} is not supported; '
                     f'allowed values: {", ".join(allowed)}')
  return parsed_value
