"""PostgreSQL's encodings as Python codecs, and the encoding of a script pg_dump wrote.

pg_dump, pg_dumpall and pg_restore write names and text in the encoding of their client
connection (the database's own, or ``PGCLIENTENCODING``, or pg_dump's ``--encoding``),
and say which in a ``SET client_encoding = '…';`` line near the script's start, written
in ASCII like every encoding name. :func:`decode_script` reads a script in that encoding:
it is right for any backup, whatever respaldo recorded about it.
"""

from __future__ import annotations

import codecs
import re

# PostgreSQL's names of server encodings whose Python codec is not found by the name
# itself (lower case, as Python looks them up).
_CODECS = {
    "sql_ascii": "utf-8",  # any bytes: psycopg reads them as UTF-8 too
    "latin5": "iso8859-9",
    "latin6": "iso8859-10",
    "latin7": "iso8859-13",
    "latin8": "iso8859-14",
    "latin9": "iso8859-15",
    "latin10": "iso8859-16",
    "koi8r": "koi8_r",
    "koi8u": "koi8_u",
    "mule_internal": "utf-8",
    "euc_jis_2004": "euc_jis_2004",
}


def python_codec(encoding: str | None) -> str:
    """The Python codec of PostgreSQL server encoding ``encoding`` (``UTF8``,
    ``LATIN1``, ``WIN1252``…); UTF-8 for None or one Python does not know. Pure."""
    if not encoding:
        return "utf-8"
    name = encoding.lower()
    if name.startswith("win") and name[3:].isdigit():
        name = "cp" + name[3:]
    name = _CODECS.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


# The line pg_dump, pg_dumpall and pg_restore write (pg_dump: "SET client_encoding =
# 'LATIN1';"). Every encoding's name is ASCII, and every server encoding is a superset of
# ASCII, so the line reads the same whatever the script's encoding.
_CLIENT_ENCODING = re.compile(rb"^SET client_encoding = '([A-Za-z0-9_]+)';$", re.MULTILINE)


def script_encoding(script: bytes) -> str | None:
    """The encoding (PostgreSQL's name) a pg_dump/pg_dumpall/pg_restore SQL script
    declares in its first ``SET client_encoding`` line; None if it has none. Pure."""
    match = _CLIENT_ENCODING.search(script)
    return match.group(1).decode("ascii") if match is not None else None


def decode_script(script: bytes) -> str:
    """``script`` as text, read in the encoding it declares (:func:`script_encoding`;
    UTF-8 if none). Raises UnicodeDecodeError (a ValueError) for bytes not in it. Pure."""
    return script.decode(python_codec(script_encoding(script)))


def utf8_client(script: str) -> str:
    """``script`` (text of :func:`decode_script`) with its ``SET client_encoding`` lines
    saying UTF8: it is sent to the server as UTF-8 now, whatever it was written in. Pure."""
    return re.sub(
        r"^SET client_encoding = '[A-Za-z0-9_]+';$",
        "SET client_encoding = 'UTF8';",
        script,
        flags=re.MULTILINE,
    )
