"""Replacing a secret in text that leaves the process, without mangling what merely
contains it.

A short secret ("1234", "postgres") also occurs inside ids, times, sizes, ports and
words that are not it: replaced there, it mangles every message (``job <secret>5``) and
tells a reader which characters it holds. Where a driver, a server or a library echoes
a secret, it stands alone: quoted, after "password" or "=", between the ":" and "@" of
a URL, at the end of a line. So a secret shorter than :data:`SHORT_SECRET` characters is
replaced only where no letter, digit or underscore is glued to it, an escape such as
``\\n``, ``\\x09`` or ``%3A`` before it counting as a boundary (an edge of the secret
that is itself punctuation needs no such boundary); a longer one cannot occur by chance
and is replaced wherever it appears. The settings recommend long secrets
(docs/configuration.md).
"""

from __future__ import annotations

import re

SHORT_SECRET = 12
"""A secret shorter than this is replaced only where it stands alone."""

_WORD = re.compile(r"\w")
# Where a secret starting with a word character stands alone: after no word character,
# or after an escape whose last character is one: ``\n`` or ``\x09`` in a repr()
# or a bytes literal, ``%3A`` in a URL-encoded one (``user%3Asecret%40host``). Each
# lookbehind has a fixed width, as Python's need.
_STANDS_AFTER = (
    r"(?:(?<!\w)|(?<=\\[abefnrtv0])|(?<=\\x[0-9A-Fa-f]{2})"
    r"|(?<=\\u[0-9A-Fa-f]{4})|(?<=%[0-9A-Fa-f]{2}))"
)


def secret_pattern(secret: str) -> re.Pattern[str] | None:
    """The pattern that finds a short ``secret`` where it stands alone; None for a long
    one (plain replacement) or an empty one."""
    if not secret or len(secret) >= SHORT_SECRET:
        return None
    before = _STANDS_AFTER if _WORD.match(secret[0]) else ""
    after = r"(?!\w)" if _WORD.match(secret[-1]) else ""
    return re.compile(before + re.escape(secret) + after)


def replace_secret(text: str, secret: str, mask: str) -> str:
    """``text`` with ``secret`` replaced by ``mask`` (see the module's docstring)."""
    if not secret:
        return text
    pattern = secret_pattern(secret)
    return text.replace(secret, mask) if pattern is None else pattern.sub(mask, text)
