"""Application files as a source: directory trees read as a tar stream, and restored.

Words used here:

file set
    A configured, named group of paths (``[[file_sets]]``: the ERP's uploads, say) with
    exclusion patterns; one ``files`` backup holds one file set.
tree stream
    :class:`~respaldo.files.tree.TreeTarStream`: a POSIX (pax) tar of the file set, made
    on the fly as the chunker reads it, in a fixed order (names sorted), with modes,
    owners and modification times (to the nanosecond, in pax headers). An unchanged file
    yields the same bytes every time, so it yields the same chunks and costs nothing in
    the next backup. Member names are the absolute paths without their leading ``/``.
    A file that changed while read is read again, as a second member of its name that
    replaces the first; one that cannot be read, or keeps changing, is an error of the
    stream (``TreeStats.errors``) that fails the backup.
exclusion pattern
    A shell pattern (``fnmatch``). Without a ``/`` it matches a file or directory name at
    any depth (``*.tmp``, ``cache``); with one, the path relative to the configured path
    it is under (``thumbnails/*``). An excluded directory is skipped with its contents.
safe extraction
    :func:`~respaldo.files.extract.extract_tar`: members that would land outside the
    target (absolute names, ``..``, paths through links), hard links, FIFOs and device
    files are refused, and the target is emptied again; modes, times and (as root) owners are
    restored as they were.

Layer rule: like :mod:`respaldo.postgres`, this package knows nothing of chunks,
repositories or the catalog.
"""

from __future__ import annotations

from respaldo.files.extract import ExtractStats, extract_tar
from respaldo.files.tree import TreeStats, TreeTarStream

__all__ = ["ExtractStats", "TreeStats", "TreeTarStream", "extract_tar"]
