"""A dump's table of contents, and the part of it that brings back some tables or schemas.

``pg_restore --list --verbose`` prints one line per archive entry and, below it, the ids
of the entries it depends on (``;\tdepends on: 12 985``). :func:`parse_listing` reads that;
:func:`select` picks the entries that restore just the chosen tables (``--table``) or
schemas (``--schema``), which are then handed back to pg_restore as ``--use-list``, in the
archive's own order (a dump read from a pipe can only be read forwards).

What a selection carries, and why:

- each chosen table: its definition, its data, and what belongs to it: indexes,
  constraints, triggers, defaults, rules, policies, extended statistics, comments and
  grants, its identity or owned sequences with their current values; a partitioned table
  brings its partitions (with their data);
- whatever those need to be created, whatever its schema: the schema itself, types,
  domains, extensions, the functions triggers call, sequences named in defaults (with
  their values); with their comments and grants. A schema pulled in this way is created,
  with only those objects in it;
- the sequences the definitions taken name by text only, which the dump records no
  dependency on: ``nextval('s'::text)`` in a default, ``nextval('s')`` in the body of a
  function a default calls (:func:`sequence_uses` finds them in the definitions, the
  caller passes them to :func:`select`); without them an insert that takes the default
  fails;
- a table the chosen ones cannot be created without (the parent of a chosen partition,
  an inheritance parent) is created empty, definition only, and named in
  :attr:`Selection.definition_only`;
- an object of a chosen table that needs a table that is not restored (typically a
  foreign key to it) is left out, and described in :attr:`Selection.skipped`; the same
  for a view, function or other object of a chosen schema that needs a table outside it;
- never: other tables, views that read the chosen tables, large objects, or the
  database's own entries (pg_restore runs those only with ``--create``).

Names are matched exactly as pg_dump wrote them (case-sensitive; quotes are optional
around a part). pg_restore prints names unquoted: a schema name with a space in it is
told from the schemas' own entries, and a line break in a name is printed as a space
(:func:`respaldo.postgres.counts.find_recorded` matches such a name to its row count).
A role name with a space in it, as owner of an entry, makes that line's
tag ambiguous: such a line is parsed as well as possible. Everything here but the
reading of :func:`read_listing` and :class:`BlockStarts` is pure.
"""

from __future__ import annotations

import difflib
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from respaldo.postgres.counts import count_key
from respaldo.postgres.dbprops import Archive, read_offline
from respaldo.postgres.encodings import python_codec, script_encoding

# Entry kinds with a space in their name, longest first, so that "TABLE DATA" is not read
# as "TABLE" with namespace "DATA". A kind missing here is read as its first word: it is
# then treated as a plain definition (taken when something needs it).
_KINDS = sorted(
    (
        "ACCESS METHOD",
        "BLOB METADATA",
        "CHECK CONSTRAINT",
        "DATABASE PROPERTIES",
        "DEFAULT ACL",
        "DUMMY TYPE",
        "EVENT TRIGGER",
        "FK CONSTRAINT",
        "FOREIGN DATA WRAPPER",
        "FOREIGN SERVER",
        "FOREIGN TABLE",
        "INDEX ATTACH",
        "LARGE OBJECT",
        "MATERIALIZED VIEW DATA",
        "MATERIALIZED VIEW",
        "OPERATOR CLASS",
        "OPERATOR FAMILY",
        "PROCEDURAL LANGUAGE",
        "PUBLICATION TABLE",
        "PUBLICATION TABLES IN SCHEMA",
        "ROW SECURITY",
        "SECURITY LABEL",
        "SEQUENCE OWNED BY",
        "SEQUENCE SET",
        "SHELL TYPE",
        "SUBSCRIPTION TABLE",
        "TABLE ATTACH",
        "TABLE DATA",
        "TEXT SEARCH CONFIGURATION",
        "TEXT SEARCH DICTIONARY",
        "TEXT SEARCH PARSER",
        "TEXT SEARCH TEMPLATE",
        "USER MAPPING",
    ),
    key=len,
    reverse=True,
)
_LINE = re.compile(r"^(?P<id>\d+); (?P<classid>\d+) (?P<oid>\d+) (?P<rest>.*)$")
_DEPENDS = re.compile(r"^;\s*depends on:(?P<ids>[\d ]*)$")

RELATIONS = frozenset({"TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE"})
"""Entries that are tables or read like them: one is never restored unless chosen (or,
definition only, because a chosen table cannot be created without it)."""

_SESSION = frozenset({"ENCODING", "STDSTRINGS", "SEARCHPATH"})
"""Session settings every restore needs first."""

# What belongs to a relation: taken with a chosen one (if all it needs can come too).
_BELONGS = frozenset(
    {
        "CHECK CONSTRAINT",
        "CONSTRAINT",
        "DEFAULT",
        "FK CONSTRAINT",
        "INDEX",
        "INDEX ATTACH",
        "MATERIALIZED VIEW DATA",
        "POLICY",
        "ROW SECURITY",
        "RULE",
        "SEQUENCE",
        "STATISTICS",
        "TABLE ATTACH",
        "TABLE DATA",
        "TRIGGER",
    }
)
# What decorates any object: taken whenever everything it is about is taken.
_DECORATES = frozenset(
    {"ACL", "COMMENT", "DEFAULT ACL", "SECURITY LABEL", "SEQUENCE OWNED BY", "SEQUENCE SET"}
)
# Kinds whose tag is "<table> <name>": the table they belong to is in their tag.
_TABLE_PREFIXED = frozenset(
    {"CHECK CONSTRAINT", "CONSTRAINT", "DEFAULT", "FK CONSTRAINT", "POLICY", "RULE", "TRIGGER"}
)
_LARGE_OBJECTS = frozenset({"BLOB", "BLOBS", "BLOB METADATA", "LARGE OBJECT"})
# Never part of a selection: large objects, and the database's own entries.
_NEVER = frozenset(
    {"BLOB", "BLOBS", "BLOB METADATA", "DATABASE", "DATABASE PROPERTIES", "LARGE OBJECT"}
)


@dataclass(frozen=True, slots=True)
class TocEntry:
    """One entry of a dump's table of contents, as ``pg_restore --list --verbose`` shows it.

    Slotted, its kind, namespace and owner interned (:func:`parse_listing`): a dump of
    20,000 tables has 164,000 entries, all in memory at once (89 MiB as plain objects)."""

    dump_id: int
    kind: str
    namespace: str | None
    tag: str
    owner: str
    line: str
    """The listing line itself, for ``--use-list``."""
    depends: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        """``schema.tag``, or the tag alone for an entry outside any schema."""
        return f"{self.namespace}.{self.tag}" if self.namespace else self.tag

    @property
    def qualified(self) -> str:
        """:attr:`name` as ``restore --table`` takes it back: a part with a dot or a
        double quote in it is quoted (``"a.b".c`` and ``a."b.c"`` are two tables)."""
        return count_key(self.namespace, self.tag) if self.namespace else self.tag


class Listing(list[TocEntry]):
    """A dump's entries, and the compression its header names (``"0"``, ``"none"``,
    ``"gzip"``…; None if the listing had no header)."""

    compression: str | None = None


_COMPRESSION = re.compile(r"^;\s+Compression:\s*(?P<method>\S+)")


def _spaced_schemas(lines: list[str]) -> list[str]:
    """The names with a space in them of the listing's schemas, longest first.

    pg_restore prints names unquoted, so "TABLE Mis Ventas lineas owner" cannot be split
    by spaces alone: the schemas' own entries ("SCHEMA - Mis Ventas owner") say which
    namespaces hold a space."""
    names = set()
    for raw in lines:
        match = _LINE.match(raw)
        if match is not None and match.group("rest").startswith("SCHEMA - "):
            name = match.group("rest")[len("SCHEMA - ") :].rpartition(" ")[0]
            if " " in name:
                names.add(name)
    return sorted(names, key=len, reverse=True)


def parse_listing(text: str) -> Listing:
    """The entries of a ``pg_restore --list --verbose`` output, in archive order. Pure.

    A namespace with a space in it is read as the longest schema of the listing it
    starts with (``TABLE Mis Ventas lineas``: schema ``Mis Ventas``, table ``lineas``)."""
    entries = Listing()
    lines = text.splitlines()
    spaced = _spaced_schemas(lines)
    for raw in lines:
        compression = _COMPRESSION.match(raw)
        if compression is not None:
            entries.compression = compression.group("method")
            continue
        depends = _DEPENDS.match(raw)
        if depends is not None and entries:
            last = entries[-1]
            ids = tuple(int(i) for i in depends.group("ids").split())
            entries[-1] = TocEntry(
                last.dump_id,
                last.kind,
                last.namespace,
                last.tag,
                last.owner,
                last.line,
                last.depends + ids,
            )
            continue
        match = _LINE.match(raw)
        if match is None:
            continue
        rest = match.group("rest")
        kind = next((k for k in _KINDS if rest.startswith(k + " ")), rest.split(" ", 1)[0])
        after = rest[len(kind) + 1 :]
        schema = next((n for n in spaced if after.startswith(n + " ")), None)
        if schema is not None:
            namespace, named = schema, after[len(schema) + 1 :]
        else:
            namespace, _, named = after.partition(" ")
        # "TAG OWNER": the owner is the last word (empty for entries without one).
        tag, _, owner = named.rpartition(" ") if " " in named else (named, "", "")
        entries.append(
            TocEntry(
                int(match.group("id")),
                sys.intern(kind),
                None if namespace == "-" else sys.intern(namespace),
                tag,
                sys.intern(owner),
                raw,
            )
        )
    return entries


def read_listing(
    archive: Archive, *, bindir: Path | str | None = None, encoding: str | None = None
) -> Listing:
    """The table of contents of the dump ``archive`` (the bytes of a ``pg_dump -Fc``
    archive from its start, or a directory-format dump's directory). Only the table of
    contents is read: pg_restore exits after it, and the rest of the archive is never
    fetched. pg_restore prints names in the backed-up database's encoding, ``encoding``
    (PostgreSQL's name, ``LATIN1``; None: UTF8). Raises PostgresError, ToolNotFound, or
    what the iterator raises."""
    listing = read_offline(["--list", "--verbose"], archive, bindir=bindir)
    return parse_listing(listing.decode(python_codec(encoding), "replace"))


def declared_encoding(
    archive: Archive, *, bindir: Path | str | None = None, tmp_dir: Path | None = None
) -> str | None:
    """The encoding the dump ``archive`` declares its names and text to be in (the
    ``SET client_encoding`` line of a script of none of its entries: only the table of
    contents is read), or None if it declares none. For backups that did not record the
    encoding (``meta.encoding``, written since 2026-12-05): without it their names were
    read as UTF-8. Raises PostgresError, ToolNotFound, or what the iterator raises."""
    with tempfile.TemporaryDirectory(prefix="respaldo-toc-", dir=tmp_dir) as tmp:
        nothing = Path(tmp) / "none.list"
        nothing.write_bytes(b"")
        script = read_offline([f"--use-list={nothing}", "--file=-"], archive, bindir=bindir)
    return script_encoding(script)


def split_name(name: str) -> tuple[str | None, str]:
    """``schema.table`` (either part may be in double quotes) -> (schema, table); a name
    without a schema -> (None, name). Raises ValueError for an empty part. Pure."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(name):
        c = name[i]
        if c == '"':
            end = i + 1
            while True:
                end = name.find('"', end)
                if end < 0:
                    raise ValueError(f"{name!r}: a quote does not end")
                if name.startswith('""', end):
                    end += 2
                    continue
                break
            current.append(name[i + 1 : end].replace('""', '"'))
            i = end + 1
            continue
        if c == "." and len(parts) == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    if any(not p for p in parts):
        raise ValueError(f"{name!r} is not a name (schema.table)")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


class UnknownName(ValueError):
    """A ``--table`` or ``--schema`` that names nothing in the dump (or more than one
    table): ``close`` are the nearest names it holds."""

    def __init__(
        self,
        what: str,
        name: str,
        close: list[str],
        *,
        ambiguous: bool = False,
        other: TocEntry | None = None,
    ):
        super().__init__(f"{what} {name!r} {'is ambiguous' if ambiguous else 'is not in it'}")
        self.what = what
        self.name = name
        self.close = close
        self.ambiguous = ambiguous
        self.other = other
        """A relation of another kind (a view…) the name is of, if there is one."""


@dataclass(frozen=True)
class Selection:
    """The entries that restore the chosen tables and schemas, in archive order."""

    entries: tuple[TocEntry, ...]
    tables: tuple[str, ...]
    """The tables restored with their data (``schema.table``, quoted as
    :attr:`TocEntry.qualified`), sorted."""
    definition_only: tuple[str, ...]
    """Tables created empty because a chosen one cannot be created without them."""
    skipped: tuple[str, ...]
    """One line per object of a chosen table or schema that was left out, and why."""
    blocks: DataBlocks | None = None
    """The data blocks to feed pg_restore (see :func:`only_blocks`); None: the whole
    dump (large objects come before the last table wanted, or no table data is)."""
    table_parts: tuple[tuple[str, str], ...] = ()
    """The same tables as (schema, table): for their row counts, whatever the names hold."""
    large_objects: bool = False
    """Whether the dump holds large objects (which a selection never restores)."""
    brought: tuple[str, ...] = ()
    """One line per sequence taken because a definition names it by text only (see
    :func:`sequence_uses`), or that such a name cannot be matched to."""

    def use_list(self) -> str:
        """The text of a ``pg_restore --use-list`` file."""
        return "".join(entry.line + "\n" for entry in self.entries)


@dataclass(frozen=True)
class DataBlocks:
    """The dump ids of the ``TABLE DATA`` entries in archive order (the order of their
    blocks in the dump) and those of them that are wanted."""

    order: tuple[int, ...]
    wanted: frozenset[int]


# The end of a data block (a zero length) and the start of the next one: its type
# (1, table data) and the sign byte of its dump id; the id's four bytes follow.
_BLOCK_START = b"\x00\x00\x00\x00\x00\x01\x00"
_BLOCK_END = b"\x00\x00\x00\x00\x00"
_NONZERO = re.compile(b"[^\x00]")
_HEADER = len(_BLOCK_START) + 4


def only_blocks(chunks: Iterable[bytes], blocks: DataBlocks) -> Iterator[bytes]:
    """The archive ``chunks`` yields, without the data blocks of tables that are not
    wanted, and ending after the last wanted one: what ``pg_restore --use-list`` reading
    a pipe needs, without making it read (and skip) the rest. Pure.

    It relies on how ``pg_dump -Fc -Z0`` writes table data: each COPY row as a length
    (a sign byte and four bytes) and the row, and a zero length at the block's end. A
    text COPY row holds no zero byte and is never empty, so five zero bytes followed by
    ``1, 0`` and the four bytes of a table-data entry's dump id (later in the archive
    than the last block seen) is the start of that entry's block; the table of
    contents ends with an offset field of zero bytes, so the first block is found too
    (if not, it goes along: pg_restore skips it). Large objects (raw bytes) come after
    every table's data, and nothing after the last wanted block is looked at. Anything
    that does not fit goes along as it is: at worst pg_restore skips it itself.
    """
    position = {dump_id: i for i, dump_id in enumerate(blocks.order)}
    last = max((position[i] for i in blocks.wanted if i in position), default=-1)
    passing = True  # the archive's header and table of contents
    seen = -1
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        start = search = 0
        while (at := data.find(_BLOCK_START, search)) >= 0 and at + _HEADER <= len(data):
            dump_id = int.from_bytes(data[at + len(_BLOCK_START) : at + _HEADER], "little")
            index = position.get(dump_id, -1)
            if index <= seen:
                search = at + 1
                continue
            boundary = at + 5  # the previous block's end marker belongs to it
            if passing and boundary > start:
                yield data[start:boundary]
            if index > last:
                return
            start = search = boundary
            seen = index
            passing = dump_id in blocks.wanted
        # The last bytes may be the start of a block start: decided with the next chunk.
        keep = max(start, len(data) - (_HEADER - 1))
        if passing and keep > start:
            yield data[start:keep]
        carry = data[keep:]
    if passing and carry:
        yield carry


class BlockStarts:
    """A binary reader that passes a ``pg_dump -Fc -Z0`` archive through and notes where
    each data block starts: ``starts`` maps a dump id to the offset of its block (the
    first one found; see :func:`only_blocks` for how a block start is told; large
    objects' blocks, type 3, are noted too, as the end of the table data before them).
    What is noted is a hint for reading less of the dump, never trusted alone: a restore
    still gets each block checked by pg_restore and its row count."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self._offset = 0  # of the end of what was read
        self._tail = b""  # the last bytes read, for a block start across two reads
        self.starts: dict[int, int] = {}

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        if data:
            self._scan(data)
        return data

    def _scan(self, data: bytes) -> None:
        window = self._tail + data
        base = self._offset - len(self._tail)
        # Five zero bytes (rare in table data: only block ends), then past the run of
        # zeros a block header's type (1 table data, 3 large objects) and sign byte.
        at = window.find(_BLOCK_END)
        while at >= 0:
            found = _NONZERO.search(window, at + len(_BLOCK_END))
            header = found.start() if found is not None else len(window)
            if header + 6 > len(window):
                break  # decided with the next read (the tail keeps the last bytes)
            if window[header] in (1, 3) and window[header + 1] == 0:
                dump_id = int.from_bytes(window[header + 2 : header + 6], "little")
                self.starts.setdefault(dump_id, base + header)
            at = window.find(_BLOCK_END, header + 1)
        self._offset += len(data)
        self._tail = window[-(_HEADER - 1) :]


def tables_in(entries: Iterable[TocEntry]) -> list[TocEntry]:
    """The TABLE entries (ordinary, partitioned, partitions), in archive order. Pure."""
    return [e for e in entries if e.kind == "TABLE"]


def select(
    entries: Sequence[TocEntry],
    tables: Sequence[str] = (),
    schemas: Sequence[str] = (),
    sequences: Iterable[int] = (),
) -> Selection:
    """The entries that restore ``tables`` (``schema.table`` names) and ``schemas`` (every
    object in them), and the sequences whose dump ids are ``sequences`` (with their
    values, and what they need: a table that owns one comes as a definition only); see
    the module docstring for what comes along. Raises UnknownName (with the closest names
    the dump holds) for a name that is not in it, or a table name without a schema that
    more than one schema holds; ValueError for a malformed name. Pure."""
    return _Selector(entries).run(tables, schemas, sequences)


_SEQUENCE_CALL = re.compile(
    r"\b(?:nextval|currval|setval)\s*\((?:\s*\()*\s*'((?:[^']|'')+)'", re.IGNORECASE
)
# The header pg_restore prints above each entry of a script.
_SCRIPT_ENTRY = re.compile(
    r"^-- Name: (?P<name>.*?); Type: (?P<kind>[^;]*); Schema: (?P<schema>[^;]*);", re.MULTILINE
)


@dataclass(frozen=True)
class SequenceUse:
    """A sequence named by a string literal in a definition of a script."""

    name: tuple[str | None, str]
    """(schema or None, sequence), as the server would read the literal."""
    literal: str
    where: str
    """The entry whose definition names it: ``table ventas.pedidos``."""
    schema: str | None
    """That entry's schema."""


def sequence_uses(script: str) -> list[SequenceUse]:
    """The sequences named by a literal in a call of nextval, currval or setval in
    ``script`` (pg_restore's script of some entries), in order. Only the literal is read:
    ``nextval('s'::text)`` (which pg_dump prints ``nextval(('s'::text)::regclass)``),
    ``nextval('s')`` in a function's body (which the dump records no dependency on) as
    well as ``nextval('s'::regclass)`` (which it does); a name not computed from a
    literal is not seen. A literal that is no sequence name is left out. Pure."""
    uses = []
    headers = list(_SCRIPT_ENTRY.finditer(script))
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(script)
        schema = None if header["schema"] == "-" else header["schema"]
        where = f"{header['kind'].lower()} {f'{schema}.' if schema else ''}{header['name']}"
        for call in _SEQUENCE_CALL.finditer(script, header.end(), end):
            literal = call.group(1).replace("''", "'")
            parts = _identifiers(literal)
            if parts is None or not 1 <= len(parts) <= 3:
                continue
            name = (parts[-2] if len(parts) > 1 else None, parts[-1])
            uses.append(SequenceUse(name, literal, where, schema))
    return uses


_BARE = re.compile(r"[^\W\d][\w$]*")
# The server folds only ASCII letters of an unquoted name (in a multibyte encoding).
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _identifiers(text: str) -> list[str] | None:
    """The parts of a dotted SQL name as the server reads it (``regclass`` input):
    unquoted parts folded to lower case, quoted ones as they are. None if it is not one."""
    parts: list[str] = []
    i = 0
    text = text.strip()
    while True:
        if text.startswith('"', i):
            end = i + 1
            part = []
            while True:
                at = text.find('"', end)
                if at < 0:
                    return None
                part.append(text[end:at])
                if text.startswith('""', at):
                    part.append('"')
                    end = at + 2
                    continue
                break
            parts.append("".join(part))
            i = at + 1
        else:
            match = _BARE.match(text, i)
            if match is None:
                return None
            parts.append(match.group(0).translate(_ASCII_LOWER))
            i = match.end()
        if i == len(text):
            return parts
        if text[i] != ".":
            return None
        i += 1


class _Selector:
    def __init__(self, entries: Sequence[TocEntry]) -> None:
        self.entries = entries
        self.by_id = {e.dump_id: e for e in entries}
        self.taken: set[int] = set()
        self.chosen: set[int] = set()  # relations chosen: their data and belongings come
        self.definition_only: set[int] = set()
        self.skipped: list[str] = []

    def run(
        self, tables: Sequence[str], schemas: Sequence[str], sequences: Iterable[int]
    ) -> Selection:
        roots: list[TocEntry] = []
        for name in tables:
            self.chosen.add(self._find_table(name).dump_id)
        for schema in schemas:
            roots += self._schema_objects(schema)
        self._add_partitions()
        # A chosen table may pull in the tables it cannot be created without.
        for dump_id in sorted(self.chosen):
            if self.by_id[dump_id].kind == "TABLE":
                needed, _ = self._needs(self.by_id[dump_id], allow_relations=True)
                self.taken |= needed
        # As a sequence a default depends on would (an owning table: definition only).
        for dump_id in sorted(set(sequences) & set(self.by_id)):
            needed, _ = self._needs(self.by_id[dump_id], allow_relations=True)
            self.taken |= needed
        # The other objects of a chosen schema: left out if they need a table not restored.
        for entry in roots:
            needed, blocker = self._needs(entry, allow_relations=False)
            if blocker is None:
                self.taken |= needed
            else:
                self.chosen.discard(entry.dump_id)
                self.skipped.append(f"{_describe(entry)} is left out: {_why(blocker)}")
        self._take_belongings()
        self._take_decorations()
        taken = tuple(e for e in self.entries if e.dump_id in self.taken or e.kind in _SESSION)
        with_data = {e.depends[0] for e in taken if e.kind == "TABLE DATA" and e.depends}
        restored = sorted(
            (self.by_id[i] for i in self.chosen if i in with_data), key=lambda e: e.name
        )
        return Selection(
            entries=taken,
            tables=tuple(e.qualified for e in restored),
            table_parts=tuple((e.namespace or "", e.tag) for e in restored),
            definition_only=tuple(sorted(self.by_id[i].qualified for i in self.definition_only)),
            skipped=tuple(self.skipped),
            blocks=self._blocks(),
            large_objects=any(e.kind in _LARGE_OBJECTS for e in self.entries),
        )

    def _blocks(self) -> DataBlocks | None:
        data = [e for e in self.entries if e.kind == "TABLE DATA"]
        wanted = {e.dump_id for e in data if e.dump_id in self.taken}
        compression = getattr(self.entries, "compression", None)
        if not wanted or compression not in (None, "0", "none"):
            return None  # compressed data may hold anything, zero bytes included
        last = max(i for i, e in enumerate(self.entries) if e.dump_id in wanted)
        # Large objects' contents (raw bytes, which may look like a block start) are in
        # BLOBS blocks (BLOB and BLOB METADATA entries are their definitions).
        if any(e.kind == "BLOBS" for e in self.entries[:last]):
            return None
        return DataBlocks(tuple(e.dump_id for e in data), frozenset(wanted))

    # --- what was asked for ------------------------------------------------------------

    def _find_table(self, name: str) -> TocEntry:
        schema, table = split_name(name)
        readings = _readings(name)
        candidates = tables_in(self.entries)
        found = [t for t in candidates if _named(t, readings)]
        if len(found) == 1:
            return found[0]
        if found:
            raise UnknownName("table", name, sorted(t.qualified for t in found), ambiguous=True)
        others = [e for e in self.entries if e.kind in RELATIONS and _named(e, readings)]
        if len(others) == 1:
            raise UnknownName("table", name, [], other=others[0])
        names = {t.name: t.qualified for t in candidates}
        wanted = f"{schema}.{table}" if schema else table
        close = [names[n] for n in difflib.get_close_matches(wanted, list(names), n=5, cutoff=0.6)]
        # The same (or a close) name in another schema.
        tags = difflib.get_close_matches(table, [t.tag for t in candidates], n=5, cutoff=0.6)
        close += [t.qualified for t in candidates if t.tag in tags]
        raise UnknownName("table", name, list(dict.fromkeys(close))[:8])

    def _schema_objects(self, schema: str) -> list[TocEntry]:
        known = sorted({e.tag for e in self.entries if e.kind == "SCHEMA"})
        # A schema is one name: "a.b" is the schema a.b (quotes optional), not a and b.
        quoted = schema.startswith('"') and schema.endswith('"') and len(schema) > 1
        bare = schema[1:-1].replace('""', '"') if quoted else schema
        if bare not in known and not any(e.namespace == bare for e in self.entries):
            _, bare = split_name(schema)
        in_schema = [e for e in self.entries if e.namespace == bare]
        if bare not in known and not in_schema:
            close = difflib.get_close_matches(bare, known, n=5, cutoff=0.6)
            raise UnknownName("schema", schema, close)
        # The schema, and its comment and grants (which for the public schema, which
        # pg_dump does not dump, depend on an entry the listing does not show).
        tags = {f"SCHEMA {bare}", f'SCHEMA "{bare}"'}
        self.taken |= {
            e.dump_id
            for e in self.entries
            if (e.kind == "SCHEMA" and e.tag == bare)
            or (e.kind in _DECORATES and e.namespace is None and e.tag in tags)
        }
        roots = []
        for entry in in_schema:
            if entry.kind in RELATIONS:
                self.chosen.add(entry.dump_id)
                if entry.kind != "TABLE":
                    roots.append(entry)
            elif entry.kind == "SEQUENCE" or entry.kind not in _BELONGS | _DECORATES | _NEVER:
                # A sequence owned by a table comes with it anyway; any other is the
                # schema's own (and is left out if it belongs to a table elsewhere).
                roots.append(entry)
        return roots

    def _add_partitions(self) -> None:
        """A chosen partitioned table brings its partitions (their data is its rows):
        ``TABLE ATTACH <partition>`` depends on the partition and on its parent."""
        changed = True
        while changed:
            changed = False
            for entry in self.entries:
                if entry.kind != "TABLE ATTACH":
                    continue
                tables = [self.by_id[i] for i in entry.depends if self._kind(i) == "TABLE"]
                child = next((t for t in tables if (t.namespace, t.tag) == _key(entry)), None)
                if child is None or child.dump_id in self.chosen:
                    continue
                if any(t.dump_id in self.chosen for t in tables if t is not child):
                    self.chosen.add(child.dump_id)
                    changed = True

    # --- what comes along ---------------------------------------------------------------

    def _kind(self, dump_id: int) -> str | None:
        entry = self.by_id.get(dump_id)
        return entry.kind if entry is not None else None

    def _needs(self, entry: TocEntry, *, allow_relations: bool) -> tuple[set[int], TocEntry | None]:
        """``entry`` and everything it needs, transitively, that is not taken yet; and the
        first relation among them that is not restored (then nothing may be taken). With
        ``allow_relations``, such relations come as definitions only instead."""
        needed: set[int] = set()
        stack = [entry]
        while stack:
            current = stack.pop()
            if current.dump_id in needed or current.dump_id in self.taken:
                continue
            restored = self.chosen | self.definition_only
            if (
                current is not entry
                and current.kind in RELATIONS
                and current.dump_id not in restored
            ):
                if not allow_relations:
                    return set(), current
                self.definition_only.add(current.dump_id)
            needed.add(current.dump_id)
            # Ids the listing does not show (pg_dump's section boundaries) need nothing.
            stack += [self.by_id[i] for i in current.depends if i in self.by_id]
        return needed, None

    def _take_belongings(self) -> None:
        """Indexes, constraints, triggers… of the chosen relations. One that needs a table
        not restored (a foreign key to it) is left out, and said so if it is the chosen
        table's own (not, say, another table's foreign key to it)."""
        for entry in self.entries:
            if entry.kind not in _BELONGS or entry.dump_id in self.taken:
                continue
            if not any(i in self.chosen for i in entry.depends):
                continue
            needed, blocker = self._needs(entry, allow_relations=False)
            if blocker is None:
                self.taken |= needed
                continue
            owner = self._owner(entry)
            if owner is not None and owner.dump_id in self.chosen:
                self.skipped.append(
                    f"{_describe(entry)} of {owner.qualified} is left out: {_why(blocker)}"
                )

    def _owner(self, entry: TocEntry) -> TocEntry | None:
        """The relation an index, constraint, trigger… belongs to."""
        relations = [self.by_id[i] for i in entry.depends if self._kind(i) in RELATIONS]
        if entry.kind in _TABLE_PREFIXED:
            matching = [
                r
                for r in relations
                if r.namespace == entry.namespace and entry.tag.startswith(r.tag + " ")
            ]
            return max(matching, key=lambda r: len(r.tag), default=None)
        return relations[0] if len(set(relations)) == 1 else None

    def _take_decorations(self) -> None:
        """Comments, grants, sequence values… of everything taken."""
        changed = True
        while changed:
            changed = False
            for entry in self.entries:
                if entry.kind not in _DECORATES or entry.dump_id in self.taken:
                    continue
                known = [i for i in entry.depends if i in self.by_id]
                if known and all(i in self.taken for i in known):
                    self.taken.add(entry.dump_id)
                    changed = True


def _readings(name: str) -> list[tuple[str | None, str]]:
    """The (schema, table) pairs a ``--table`` name may mean. With double quotes, or
    without a dot, the one :func:`split_name` gives; unquoted, a dot in either part is
    as likely as one between them: ``obra.1.x`` is ``"obra.1".x`` or ``obra."1.x"``, and
    taking the first dot alone restored ``obra."1.x"`` unasked when both exist. Raises
    ValueError as split_name does. Pure."""
    first = split_name(name)
    if '"' in name or first[0] is None:
        return [first]
    dots = [i for i, c in enumerate(name) if c == "."]
    return [(name[:i], name[i + 1 :]) for i in dots if 0 < i < len(name) - 1]


def _named(entry: TocEntry, readings: list[tuple[str | None, str]]) -> bool:
    return any(
        entry.tag == table and schema in (None, entry.namespace) for schema, table in readings
    )


def _key(entry: TocEntry) -> tuple[str | None, str]:
    return entry.namespace, entry.tag


def _why(blocker: TocEntry) -> str:
    return f"it needs {blocker.kind.lower()} {blocker.qualified}, which is not restored"


def _describe(entry: TocEntry) -> str:
    kind = entry.kind.lower().replace("fk constraint", "foreign key")
    if entry.kind in _TABLE_PREFIXED:
        return f"{kind} {entry.tag.rsplit(' ', 1)[-1]}"
    return f"{kind} {entry.name}"
