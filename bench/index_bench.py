"""The in-memory chunk index: memory per chunk, load time and lookups, against a dict.

Run::

    .venv/bin/python -m bench.index_bench --chunks 1000000 4000000 --workdir /tmp/ibench

For each size it writes index files of random chunk ids once (plaintext, 700 entries a
pack as in 12 MiB packs of ~17 KiB sealed chunks, 64 packs a file), then measures in a
fresh subprocess per implementation, so that RSS belongs to one measurement only:

- ``dict``: the baseline, the index as it was until session 2 (a dict from the 32-byte
  chunk id to a tuple of pack number, offset, length and raw length; what
  ``ChunkIndex.add_pack`` did for every decoded entry);
- ``compact``: :class:`respaldo.repository.index.ChunkIndex` (numpy arrays sorted by the
  ids' first 8 bytes, plus a dict of additions merged every ``DELTA_MERGE`` chunks).

Each: RSS after loading every file minus RSS before (the plaintexts are read before the
first measurement and stay in memory for both), bytes per chunk from that, load seconds,
then 200,000 lookups of known ids and 200,000 of unknown ones, then 200,000 additions in
packs of 700 (what a backup of ~3.5 GB of new data adds). Results go to stdout as
Markdown and to ``bench/results/index.json``.
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

from respaldo.repository.index import ChunkIndex, decode_index, encode_index
from respaldo.repository.packs import PackEntry

RESULTS = Path(__file__).resolve().parent / "results" / "index.json"
PER_PACK = 700
PACKS_PER_FILE = 64
PROBES = 200_000


class Index(Protocol):
    def add_pack(self, pack_id: str, entries: list[PackEntry]) -> None: ...
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
    rng = random.Random(seed)
    paths: list[Path] = []
    pack = 0
    left = chunks
    while left:
        groups = []
        for _ in range(PACKS_PER_FILE):
            if not left:
                break
            n = min(PER_PACK, left)
            offsets = range(36, 36 + n * 17_000, 17_000)
            groups.append(
                (
                    f"{pack:064x}",
                    [PackEntry(rng.randbytes(32), o, 17_000, 20_000) for o in offsets],
                )
            )
            pack += 1
            left -= n
        path = folder / f"{len(paths):06d}.idx"
        path.write_bytes(encode_index(groups))
        paths.append(path)
    done.touch()
    return paths


def measure(kind: str, workdir: Path, chunks: int, seed: int) -> dict[str, Any]:
    """One implementation, in this process (the child)."""
    paths = make_files(workdir, chunks, seed)
    blobs = [p.read_bytes() for p in paths]
    known = [e.chunk_id for e in next(decode_index(blobs[0]))[1]]
    rng = random.Random(seed + 1)
    hits = [rng.choice(known) for _ in range(PROBES)]
    misses = [rng.randbytes(32) for _ in range(PROBES)]
    additions = [
        (
            f"{10**9 + p:064x}",
            [PackEntry(rng.randbytes(32), i * 100, 90, 99) for i in range(PER_PACK)],
        )
        for p in range(PROBES // PER_PACK)
    ]
    gc.collect()
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
    t0 = time.perf_counter()
    found = sum(1 for cid in hits if cid in index)
    hit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    found_unknown = sum(1 for cid in misses if cid in index)
    miss_s = time.perf_counter() - t0
    assert found == PROBES and found_unknown == 0
    t0 = time.perf_counter()
    for pack_id, entries in additions:
        index.add_pack(pack_id, entries)
    add_s = time.perf_counter() - t0
    return {
        "kind": kind,
        "chunks": chunks,
        "rss_bytes": grown,
        "bytes_per_chunk": grown / chunks,
        "load_seconds": load,
        "hit_us": hit_s / PROBES * 1e6,
        "miss_us": miss_s / PROBES * 1e6,
        "add_us": add_s / (len(additions) * PER_PACK) * 1e6,
    }


def run_child(kind: str, workdir: Path, chunks: int, seed: int) -> dict[str, Any]:
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
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def table(results: list[dict[str, Any]]) -> Iterator[str]:
    yield (
        "| chunks | index | RSS MiB | bytes/chunk | load s | lookup hit µs | lookup miss µs "
        "| add µs |"
    )
    yield "|--:|---|--:|--:|--:|--:|--:|--:|"
    for r in results:
        yield (
            f"| {r['chunks']:,} | {r['kind']} | {r['rss_bytes'] / 2**20:.0f} "
            f"| {r['bytes_per_chunk']:.0f} | {r['load_seconds']:.2f} | {r['hit_us']:.2f} "
            f"| {r['miss_us']:.2f} | {r['add_us']:.2f} |"
        )
    yield ""
    yield "| chunks | compact / dict: memory | load time | lookup (hit) | lookup (miss) | add |"
    yield "|--:|--:|--:|--:|--:|--:|"
    by = {(r["chunks"], r["kind"]): r for r in results}
    for chunks in sorted({r["chunks"] for r in results}):
        c, d = by[(chunks, "compact")], by[(chunks, "dict")]
        yield (
            f"| {chunks:,} | {c['rss_bytes'] / d['rss_bytes']:.3f} "
            f"| {c['load_seconds'] / d['load_seconds']:.2f} | {c['hit_us'] / d['hit_us']:.1f} "
            f"| {c['miss_us'] / d['miss_us']:.1f} | {c['add_us'] / d['add_us']:.1f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index_bench", description=__doc__)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ibench"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["dict", "compact"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.workdir, args.chunks[0], args.seed)))
        return 0
    results = []
    for chunks in args.chunks:
        make_files(args.workdir, chunks, args.seed)
        for kind in ("dict", "compact"):
            results.append(run_child(kind, args.workdir, chunks, args.seed))
            print(f"{chunks:,} {kind}: done", file=sys.stderr)
    lines = list(table(results))
    print("\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
