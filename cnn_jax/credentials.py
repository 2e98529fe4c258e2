"""Passwords in URLs are never shown: what a command prints or writes goes through `masked`.

A study's storage URL may carry its password (`postgresql://user:PASSWORD@host/db`). The
command line is visible to every user of a machine (`ps`), so docs/SWEEPS.md leads users to
libpq's ~/.pgpass or $PGPASSWORD instead; but when a password is given in the URL, no line a
command prints (errors, the resume command after a signal, logs) and no file it writes shows
it.
"""
from __future__ import annotations

import re

MASK = '***'
# scheme://user:password@ (RFC 3986's userinfo; a password's own '@' or '/' is %-encoded).
_USERINFO = re.compile(r'(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):[^@\s/]*@')


def masked(text: str) -> str:
  """`text` with the password of every URL in it replaced by ***."""
  return _USERINFO.sub(rf'\g<head>:{MASK}@', text)
