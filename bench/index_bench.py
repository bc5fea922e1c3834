"""The chunk index: memory, open time and lookups of the in-memory index (a dict, the
compact arrays) and of the merged on-disk cache (index_cache.py), and a backup into a
pre-filled repository against one into an empty one.

Run::

    .venv/bin/python -m bench.index_bench --chunks 1000000 4000000 --workdir /tmp/ibench
    .venv/bin/python -m bench.index_bench --kinds compact cache --runs 3 \\
        --chunks 4000000 10000000 65000000    # the in-memory kinds up to --in-memory-max
    .venv/bin/python -m bench.index_bench --backup --chunks 10000000 --runs 5

For each size it writes index files of random chunk ids once (plaintext, 700 entries a
pack as in 12 MiB packs of ~17 KiB sealed chunks, 64 packs a file), then measures in a
fresh subprocess per implementation, so that RSS belongs to one measurement only:

- ``dict``: the baseline, the index as it was until session 2 (a dict from the 32-byte
  chunk id to a tuple of pack number, offset, length and raw length; what
  ``ChunkIndex.add_pack`` did for every decoded entry);
- ``compact``: :class:`respaldo.repository.index.ChunkIndex` (numpy arrays sorted by the
  ids' first 8 bytes, plus a dict of additions merged every ``DELTA_MERGE`` chunks);
- ``cache``: the merged cache file (:mod:`respaldo.repository.index_cache`), built once
  from the same files (its build time is reported as ``build s``: what the first open
  on a machine costs, less decryption), then opened twice: *cold* (the cache file is on
  disk but not in the page cache: dropped with ``posix_fadvise(DONTNEED)`` on it alone,
  so that other processes' caches stay) and *warm*. Lookups run with the file in the
  page cache (read through once first); ``peak MiB`` is the child process's VmHWM
  from just before the index opens to the end of the lookups (Python, numpy and the
  probes, 13 MiB, included).

Each: RSS after loading every file minus RSS before (the plaintexts are read before the
first measurement and stay in memory for both), bytes per chunk from that, load seconds,
then 200,000 lookups of known ids and 200,000 of unknown ones (CPU µs each: the
machine is shared and loaded), the same lookups as a backup asks them (``WINDOW`` ids
at a time, one 1 MiB block of its stream, through ``ChunkIndex.get_many``: ``hit many``
and ``miss many``; a version without it answers one ``get`` per id, as backups asked),
then 200,000 additions in packs of 700 (what a backup of ~3.5 GB of new data adds).
Known ids are drawn from all the files.
Results go to stdout as Markdown and to ``bench/results/index.json``.

The ratios table divides each kind's lookup time by the compact index's at the smallest
size of the same round (the target: lookups per second at 10M and 65M within 2x of the
compact index's at 4M). ``--baseline-src DIR`` measures the cache a second time in each
round with the respaldo package of ``DIR`` (a ``src`` directory, e.g. of
``git archive <rev> src``), first or second in alternate rounds: before and after a
change, paired.

``--backup``: a repository (local directory, cache directory set) pre-filled with
``--chunks`` chunks (sealed index files of random ids; their packs do not exist, nothing
deduplicates against them) against an empty one; each run backs up the same new random
data (``--backup-mib``) into both, in alternating order, timing open + write + commit;
the cache is built before the first run. The ratio is per pair.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from respaldo.repository.chunker import BLOCK_SIZE
from respaldo.repository.index import GROUP, MAGIC, ChunkIndex, decode_index
from respaldo.repository.packs import PackEntry

RESULTS = Path(__file__).resolve().parent / "results" / "index.json"
PER_PACK = 700
PACKS_PER_FILE = 64
PROBES = 200_000
KINDS = ("dict", "compact", "cache", "build")


class Index(Protocol):
    def add_pack(self, pack_id: str, entries: list[PackEntry]) -> None: ...
    def get(self, chunk_id: bytes) -> object | None: ...
    def __contains__(self, chunk_id: object) -> bool: ...
    def __len__(self) -> int: ...


class DictIndex:
    """The baseline: one dict entry (and one tuple, one bytes object) per chunk."""

    def __init__(self) -> None:
        self._map: dict[bytes, tuple[int, int, int, int]] = {}
        self._pack_no: dict[str, int] = {}

    def add_pack(self, pack_id: str, entries: list[PackEntry]) -> None:
        no = self._pack_no.setdefault(pack_id, len(self._pack_no))
        for e in entries:
            self._map.setdefault(e.chunk_id, (no, e.offset, e.length, e.raw_length))

    def get(self, chunk_id: bytes) -> tuple[int, int, int, int] | None:
        return self._map.get(chunk_id)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._map

    def __len__(self) -> int:
        return len(self._map)


def rss() -> int:
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def make_files(workdir: Path, chunks: int, seed: int) -> list[Path]:
    """Index files (plaintext) describing ``chunks`` random ids; written once per size."""
    folder = workdir / f"files-{chunks}"
    done = folder / "done"
    if done.exists():
        return sorted(folder.glob("*.idx"))
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entry = np.dtype([("id", "V32"), ("offset", "<u4"), ("length", "<u4"), ("raw", "<u4")])
    paths: list[Path] = []
    pack = 0
    left = chunks
    while left:
        parts = [MAGIC]
        for _ in range(PACKS_PER_FILE):
            if not left:
                break
            n = min(PER_PACK, left)
            entries = np.empty(n, entry)
            entries["id"] = np.frombuffer(rng.bytes(32 * n), "V32")
            entries["offset"] = 36 + np.arange(n, dtype=np.uint32) * 17_000
            entries["length"], entries["raw"] = 17_000, 20_000
            parts.append(GROUP.pack(pack.to_bytes(32, "big"), n))
            parts.append(entries.tobytes())
            pack += 1
            left -= n
        path = folder / f"{len(paths):06d}.idx"
        path.write_bytes(b"".join(parts))
        paths.append(path)
    done.touch()
    return paths


def _probes(paths: list[Path], seed: int) -> tuple[bytes, bytes]:
    """Known ids from all over the files and unknown ids, 32 bytes each, in one bytes
    object each (a list of bytes objects would weigh more than the cache's index)."""
    rng = random.Random(seed + 1)
    known: list[bytes] = []
    for path in rng.sample(paths, min(len(paths), 200)):
        ids = [e.chunk_id for _, entries in decode_index(path.read_bytes()) for e in entries]
        known.extend(rng.sample(ids, min(len(ids), 2000)))
    hits = b"".join(rng.choice(known) for _ in range(PROBES))
    return hits, rng.randbytes(32 * PROBES)


def _additions(seed: int) -> list[tuple[str, list[PackEntry]]]:
    """Packs of new chunks, as a backup of ~3.5 GB of new data adds them."""
    rng = random.Random(seed + 2)
    return [
        (
            f"{10**9 + p:064x}",
            [PackEntry(rng.randbytes(32), i * 100, 90, 99) for i in range(PER_PACK)],
        )
        for p in range(PROBES // PER_PACK)
    ]


def _reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux >= 4.0), so that the probes' making
    does not count in the peak."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _read_through(path: Path) -> None:
    buffer = bytearray(1 << 20)  # one buffer: the reads must not grow this process
    with path.open("rb", buffering=0) as f:
        while f.readinto(buffer):
            pass


def build_cache(workdir: Path, chunks: int, seed: int) -> dict[str, Any]:
    """The cache file for ``chunks``, built once (in the child that first needs it)."""
    from respaldo.repository import index_build, index_cache

    paths = make_files(workdir, chunks, seed)
    folder = workdir / f"cache-{chunks}"
    stamp = folder / "build.json"
    if stamp.exists():
        built: dict[str, Any] = json.loads(stamp.read_text())
        return built
    folder.mkdir(parents=True, exist_ok=True)
    by_name = {p.name: p for p in paths}
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    index_build.build(
        folder / index_cache.CACHE_NAME,
        "bench",
        {p.name: p.stat().st_size for p in paths},
        lambda name: by_name[name].read_bytes(),
    )
    built = {
        "build_seconds": time.perf_counter() - t0,
        "build_cpu_seconds": time.process_time() - cpu0,
        "build_peak_rss": peak_rss(),
        "cache_bytes": (folder / index_cache.CACHE_NAME).stat().st_size,
    }
    stamp.write_text(json.dumps(built))
    return built


def measure_cache(workdir: Path, chunks: int, seed: int) -> dict[str, Any]:
    """The cache kind, in this process (the child): open cold and warm, then look up."""
    from respaldo.repository import index_cache

    built = build_cache(workdir, chunks, seed)
    paths = make_files(workdir, chunks, seed)
    folder = workdir / f"cache-{chunks}"
    listing = {p.name: p.stat().st_size for p in paths}
    hits, misses = _probes(paths, seed)
    gc.collect()
    path = folder / index_cache.CACHE_NAME
    _reset_peak()
    before = rss()

    def open_index() -> ChunkIndex:
        loaded = index_cache.load_cached(
            folder, "bench", lambda: listing, lambda n: b"", (KeyError,), {}
        )
        assert loaded is not None
        return loaded[0]

    _drop_from_page_cache(path)
    t0 = time.perf_counter()
    index = open_index()
    cold = time.perf_counter() - t0
    del index
    t0 = time.perf_counter()
    index = open_index()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    found_cold = sum(1 for i in range(0, 32 * 20_000, 32) if hits[i : i + 32] in index)
    hit_cold_s = time.perf_counter() - t0
    _read_through(path)
    gc.collect()
    opened = rss() - before
    result = _lookups(index, hits, misses, seed)
    assert found_cold == 20_000
    result["rss_after_lookups"] -= before
    return {
        "kind": "cache",
        "chunks": chunks,
        "rss_bytes": opened,
        "bytes_per_chunk": opened / chunks,
        "load_seconds": warm,
        "open_cold_seconds": cold,
        "hit_cold_us": hit_cold_s / 20_000 * 1e6,
        **built,
        **result,
    }


def _lookups(index: Index, hits: bytes, misses: bytes, seed: int) -> dict[str, Any]:
    """Time the lookups, then the additions; the peak RSS is taken before the additions
    (which are a backup's new chunks, not the repository's)."""
    # CPU seconds (the blocks are in the page cache: a lookup waits for nothing), which a
    # loaded machine disturbs less than wall time.
    t0 = time.process_time()
    found = sum(1 for i in range(0, len(hits), 32) if hits[i : i + 32] in index)
    hit_s = time.process_time() - t0
    t0 = time.process_time()
    found_unknown = sum(1 for i in range(0, len(misses), 32) if misses[i : i + 32] in index)
    miss_s = time.process_time() - t0
    assert found == PROBES and found_unknown == 0
    result = {"hit_us": hit_s / PROBES * 1e6, "miss_us": miss_s / PROBES * 1e6}
    result.update(_window_lookups(index, hits, misses))
    gc.collect()
    after_lookups = rss()
    peak = peak_rss()
    additions = _additions(seed)
    t0 = time.process_time()
    for pack_id, entries in additions:
        index.add_pack(pack_id, entries)
    add_s = time.process_time() - t0
    return {
        "rss_after_lookups": after_lookups,
        "peak_rss": peak,
        **result,
        "add_us": add_s / (len(additions) * PER_PACK) * 1e6,
    }


WINDOW = BLOCK_SIZE // 20_000
"""Ids a backup looks up at once: those of one block of its stream (1 MiB, about 20 KB a
chunk here)."""


def _window_lookups(index: Index, hits: bytes, misses: bytes) -> dict[str, float]:
    """The same lookups as a backup asks them: a window of WINDOW ids at a time, through
    ``get_many`` (or, for a version without it, one ``get`` per id, as backups did)."""
    step = WINDOW * 32
    get_many = getattr(index, "get_many", None)
    if get_many is None:
        get = index.get

        def get_many(ids: list[bytes]) -> list[Any]:
            return [get(cid) for cid in ids]

    out = {}
    for name, probes, want in (("hit_many_us", hits, PROBES), ("miss_many_us", misses, 0)):
        found = 0
        t0 = time.process_time()
        for at in range(0, len(probes), step):
            window = [probes[i : i + 32] for i in range(at, min(at + step, len(probes)), 32)]
            found += sum(1 for location in get_many(window) if location is not None)
        out[name] = (time.process_time() - t0) / PROBES * 1e6
        assert found == want
    return out


def measure(kind: str, workdir: Path, chunks: int, seed: int) -> dict[str, Any]:
    """One implementation, in this process (the child)."""
    if kind == "build":
        return build_cache(workdir, chunks, seed)
    if kind == "cache":
        return measure_cache(workdir, chunks, seed)
    paths = make_files(workdir, chunks, seed)
    hits, misses = _probes(paths, seed)
    blobs = [p.read_bytes() for p in paths]
    gc.collect()
    _reset_peak()
    before = rss()
    t0 = time.perf_counter()
    index: Index
    if kind == "compact":
        index = ChunkIndex.from_files(blobs)
    else:
        index = DictIndex()
        for blob in blobs:
            for pack_id, entries in decode_index(blob):
                index.add_pack(pack_id, entries)
    load = time.perf_counter() - t0
    gc.collect()
    grown = rss() - before
    assert len(index) == chunks
    return {
        "kind": kind,
        "chunks": chunks,
        "rss_bytes": grown,
        "bytes_per_chunk": grown / chunks,
        "load_seconds": load,
        **_lookups(index, hits, misses, seed),
        "rss_before": before,
    }


def run_child(
    kind: str, workdir: Path, chunks: int, seed: int, baseline: Path | None = None
) -> dict[str, Any]:
    """One measurement in a fresh process; with ``baseline`` (a ``src`` directory of
    another version of respaldo), that version's code is measured instead."""
    env = dict(os.environ)
    if baseline is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(baseline), str(Path(__file__).resolve().parent.parent)]
        )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.index_bench",
            "--child",
            kind,
            "--workdir",
            str(workdir),
            "--chunks",
            str(chunks),
            "--seed",
            str(seed),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    if baseline is not None:
        result["kind"] += " (baseline)"
    return result


def table(results: list[dict[str, Any]]) -> Iterator[str]:
    yield (
        "| chunks | index | RSS MiB open | bytes/chunk | RSS MiB lookups | peak MiB "
        "| open s (warm) | open s (cold) | build s | hit µs | hit µs (cold) | miss µs | add µs |"
    )
    yield "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    for r in results:
        cold = f"{r['open_cold_seconds']:.3f}" if "open_cold_seconds" in r else "–"
        build = f"{r['build_seconds']:.1f}" if "build_seconds" in r else "–"
        hit_cold = f"{r['hit_cold_us']:.1f}" if "hit_cold_us" in r else "–"
        looked = r["rss_after_lookups"] - r.get("rss_before", 0)
        yield (
            f"| {r['chunks']:,} | {r['kind']} | {r['rss_bytes'] / 2**20:.0f} "
            f"| {r['bytes_per_chunk']:.1f} | {looked / 2**20:.0f} | {r['peak_rss'] / 2**20:.0f} "
            f"| {r['load_seconds']:.3f} | {cold} | {build} | {r['hit_us']:.2f} | {hit_cold} "
            f"| {r['miss_us']:.2f} | {r['add_us']:.2f} |"
        )


PASSPHRASE = "index bench"  # noqa: S105 (a throw-away repository in the work directory)


def _backup_repos(workdir: Path, chunks: int) -> tuple[Path, Path]:
    """An empty repository and one pre-filled with ``chunks`` chunks (sealed index files
    of random ids; no packs), made once."""
    from respaldo.repository import ChunkerParams, KdfParams, Repository
    from respaldo.repository.crypto import AAD_INDEX
    from respaldo.repository.index import INDEX_PREFIX
    from respaldo.storage.local import LocalStorage

    folder = workdir / f"backup-{chunks}"
    done = folder / "done"
    empty, full = folder / "empty", folder / "full"
    if done.exists():
        return empty, full
    chunker = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536)
    kdf = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    for root in (empty, full):
        Repository.init(LocalStorage(root), PASSPHRASE, chunker=chunker, kdf=kdf).close()
    repo = Repository.open(LocalStorage(full), PASSPHRASE, load_index=False)
    import hashlib

    for path in make_files(workdir, chunks, 11):
        blob = repo.sealer.seal(path.read_bytes(), AAD_INDEX)
        repo.storage.put(f"{INDEX_PREFIX}{hashlib.sha256(blob).hexdigest()}", blob)
    repo.close()
    done.touch()
    return empty, full


def _one_backup(root: Path, cache: Path, data: bytes, name: str) -> tuple[float, float]:
    """Wall and CPU seconds of open + write + commit of one backup of ``data``."""
    import io
    from datetime import UTC, datetime

    from respaldo.repository import BackupWriter, Repository
    from respaldo.storage.local import LocalStorage

    t0, c0 = time.perf_counter(), time.process_time()
    repo = Repository.open(LocalStorage(root), PASSPHRASE, cache_dir=cache)
    with repo, BackupWriter(repo, name) as writer:
        writer.write_stream("data", io.BytesIO(data))
        writer.commit(kind="full", source="bench", started_at=datetime.now(UTC))
    return time.perf_counter() - t0, time.process_time() - c0


def backup_pairs(workdir: Path, chunks: int, runs: int, mib: int) -> list[str]:
    """Backups of the same new data into the empty and the pre-filled repository, in
    alternating order; the ratio of each pair."""
    from respaldo.repository import Repository
    from respaldo.storage.local import LocalStorage

    empty, full = _backup_repos(workdir, chunks)
    caches = {empty: workdir / "backup-cache-empty", full: workdir / "backup-cache-full"}
    lines = []
    for root in (empty, full):  # the first open on this machine builds the cache
        t0, c0 = time.perf_counter(), time.process_time()
        Repository.open(LocalStorage(root), PASSPHRASE, cache_dir=caches[root]).close()
        lines.append(
            f"first open of {root.name}: {time.perf_counter() - t0:.1f} s "
            f"({time.process_time() - c0:.1f} s CPU), peak RSS {peak_rss() / 2**20:.0f} MiB"
        )
    stamp = int(time.time())
    rows = []
    for run in range(runs):
        data = np.random.default_rng(stamp + run).bytes(mib * 2**20)
        order = (empty, full) if run % 2 == 0 else (full, empty)
        took = {root: _one_backup(root, caches[root], data, f"r{stamp}-{run}") for root in order}
        rows.append((took[empty], took[full]))
    lines += [
        "",
        f"| run | empty s | pre-filled ({chunks:,}) s | ratio | ratio CPU |",
        "|--:|--:|--:|--:|--:|",
    ]
    for n, ((e_wall, e_cpu), (f_wall, f_cpu)) in enumerate(rows):
        lines.append(
            f"| {n} | {e_wall:.2f} | {f_wall:.2f} | {f_wall / e_wall:.3f} | {f_cpu / e_cpu:.3f} |"
        )
    walls = sorted(f[0] / e[0] for e, f in rows)
    cpus = sorted(f[1] / e[1] for e, f in rows)
    lines.append(
        f"\nratio min/median/max: wall {walls[0]:.3f} / {walls[len(walls) // 2]:.3f} / "
        f"{walls[-1]:.3f}, CPU {cpus[0]:.3f} / {cpus[len(cpus) // 2]:.3f} / {cpus[-1]:.3f}"
    )
    return lines


def spread(results: list[dict[str, Any]]) -> Iterator[str]:
    """Min / median / max of the lookup times over the rounds, per size and kind."""
    yield (
        "| chunks | index | rounds | hit µs (CPU) min/med/max | miss µs (CPU) min/med/max "
        f"| hit µs, {WINDOW} at a time | miss µs, {WINDOW} at a time |"
    )
    yield "|--:|---|--:|--:|--:|--:|--:|"
    keys = sorted({(r["chunks"], r["kind"]) for r in results})
    for chunks, kind in keys:
        rows = [r for r in results if (r["chunks"], r["kind"]) == (chunks, kind)]

        def mmm(field: str, rows: list[dict[str, Any]] = rows) -> str:
            v = sorted(r[field] for r in rows)
            return f"{v[0]:.2f} / {v[len(v) // 2]:.2f} / {v[-1]:.2f}"

        many = (
            f"{mmm('hit_many_us')} | {mmm('miss_many_us')}" if "hit_many_us" in rows[0] else "– | –"
        )
        yield f"| {chunks:,} | {kind} | {len(rows)} | {mmm('hit_us')} | {mmm('miss_us')} | {many} |"


def ratios(results: list[dict[str, Any]]) -> Iterator[str]:
    """Each kind's lookup time against the in-memory compact index at the smallest size
    of the same round (the target: at most 2x), min / median / max over the rounds."""
    rounds: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        rounds.setdefault(r.get("round", 0), []).append(r)
    by_row: dict[tuple[int, str], dict[str, list[float]]] = {}
    for rows in rounds.values():
        base = [r for r in rows if r["kind"] == "compact"]
        if not base:
            continue
        ref = min(base, key=lambda r: r["chunks"])
        for r in rows:
            if r is ref:
                continue
            cell = by_row.setdefault((r["chunks"], r["kind"]), {"hit": [], "miss": []})
            cell["hit"].append(r["hit_us"] / ref["hit_us"])
            cell["miss"].append(r["miss_us"] / ref["miss_us"])
            if "hit_many_us" in r:
                # A backup's windows against the compact index's single lookups (how
                # backups asked it until now), and against its own windows.
                for name, field, against in (
                    ("hit many", "hit_many_us", "hit_us"),
                    ("miss many", "miss_many_us", "miss_us"),
                    ("hit many/many", "hit_many_us", "hit_many_us"),
                ):
                    if against in ref:
                        cell.setdefault(name, []).append(r[field] / ref[against])
    if not by_row:
        return
    smallest = min(r["chunks"] for r in results if r["kind"] == "compact")
    yield f"Against compact at {smallest:,} in the same round (lookups per second: the inverse):"
    yield ""
    yield (
        "| chunks | index | rounds | hit ratio min/med/max | miss ratio min/med/max "
        "| hit, windows, vs single | miss, windows, vs single | hit, windows, vs windows |"
    )
    yield "|--:|---|--:|--:|--:|--:|--:|--:|"
    for (chunks, kind), cell in sorted(by_row.items()):

        def mmm(values: list[float]) -> str:
            v = sorted(values)
            return f"{v[0]:.2f} / {v[len(v) // 2]:.2f} / {v[-1]:.2f}"

        hit, miss = mmm(cell["hit"]), mmm(cell["miss"])
        many = " | ".join(
            mmm(cell[name]) if cell.get(name) else "–"
            for name in ("hit many", "miss many", "hit many/many")
        )
        yield f"| {chunks:,} | {kind} | {len(cell['hit'])} | {hit} | {miss} | {many} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index_bench", description=__doc__)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=["dict", "compact", "cache"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ibench"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--backup", action="store_true", help="the pre-filled backup pairs")
    parser.add_argument("--in-memory-max", type=int, default=4_000_000)
    parser.add_argument("--runs", type=int, default=3, help="backup pairs, or lookup rounds")
    parser.add_argument("--backup-mib", type=int, default=64)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also measure the cache with the respaldo package of this src directory "
        "(e.g. `git archive <rev> src` unpacked), in the same rounds",
    )
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.workdir, args.chunks[0], args.seed)))
        return 0
    if args.backup:
        lines = backup_pairs(args.workdir, args.chunks[0], args.runs, args.backup_mib)
        print("\n".join(lines))
        return 0
    results = []
    for chunks in args.chunks:
        make_files(args.workdir, chunks, args.seed)
        if {"cache", "build"} & set(args.kinds):  # apart: the build's memory is not counted
            run_child("build", args.workdir, chunks, args.seed)
    # Rounds over every size and kind, so that the load of the machine falls on all alike.
    for round_ in range(args.runs):
        for chunks in args.chunks:
            for kind in args.kinds:
                if kind == "build":
                    continue  # built once above, before the rounds (its stamp says how long)
                if kind in ("dict", "compact") and chunks > args.in_memory_max:
                    continue  # gigabytes of memory: the cache is what runs at that size
                versions = [None]
                if kind == "cache" and args.baseline_src is not None:
                    # Alternating which goes first, so that neither always runs second.
                    versions = [args.baseline_src, None][:: 1 if round_ % 2 else -1]
                for baseline in versions:
                    result = run_child(kind, args.workdir, chunks, args.seed, baseline)
                    result["round"] = round_
                    result["load_average"] = os.getloadavg()[0]
                    results.append(result)
                    print(f"round {round_}: {chunks:,} {result['kind']}: done", file=sys.stderr)
    results = [r for r in results if "hit_us" in r]  # ("build" alone measures no lookups)
    lines = list(table(results))
    lines += ["", *spread(results), "", *ratios(results)]
    loads = sorted(r["load_average"] for r in results) or [0.0]
    lines += ["", f"load average (1 min) after each measurement: {loads[0]:.1f} to {loads[-1]:.1f}"]
    print("\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
