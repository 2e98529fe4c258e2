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
    kind = type(defaults[key])
    if kind is bool:
      parsed[key] = value.strip().lower() in ('1', 'true', 'yes')
    else:
      parsed[key] = kind(value.strip())
  return parsed


def choose(parsed_value: str, field: str, allowed) -> str:
  if parsed_value not in allowed:
    raise ValueError(f'config argument {field}={parsed_value!r} is not supported; '
                     f'allowed values: {", ".join(allowed)}')
  return parsed_value
