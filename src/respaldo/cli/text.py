"""Text that came from outside, made safe to print on a terminal.

The CLI's tables print what others wrote: the name typed at a failed login (audited as
typed, by anyone who reaches the API's port), a job's error (a database's own message),
a backup's database and label. Rich escapes its markup, but prints control characters
as they are, and a terminal obeys them: ``ESC [2J`` clears the screen of whoever runs
``respaldo audit``, ``ESC [1A`` moves up to overwrite the entries above, ``ESC ]0;...``
sets the window's title. :func:`escape` shows each such character as ``\\xNN`` (line
breaks and tabs stay), as do the Unicode direction overrides that reorder what a line
seems to say.
"""

from __future__ import annotations

import re

from rich.markup import escape as escape_markup

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` for a rich console: its markup escaped, its control characters shown."""
    return escape_markup(_CONTROL.sub(_shown, text))
