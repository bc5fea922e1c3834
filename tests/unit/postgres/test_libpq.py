"""respaldo's psycopg runs on the system's libpq, whose OpenSSL is the one Python's ``ssl``
and ``hashlib`` already map: psycopg[binary]'s wheel brought a libpq of its own with its
own OpenSSL and Kerberos, 4-5 MiB more resident in every process (a backup into S3
peaked 4-5 MiB higher, docs/benchmarks.md, session 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

_PROBE = textwrap.dedent(
    """
    import hashlib, json, ssl, sys
    import respaldo.postgres.connection  # what opens respaldo's connections
    import psycopg

    psycopg.pq.version()  # libpq loaded
    hashlib.sha256(b"").digest()
    maps = {line.split()[-1] for line in open("/proc/self/maps") if "/" in line}
    print(json.dumps({
        "impl": psycopg.pq.__impl__,
        "libpq": sorted(m for m in maps if "/libpq" in m),
        "libcrypto": sorted(m for m in maps if "/libcrypto" in m),
    }))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_psycopg_maps_the_systems_libpq_and_no_second_openssl() -> None:
    here = Path(__file__).resolve().parents[3]
    # psycopg's own choice, not one this environment forces.
    env = {k: v for k, v in os.environ.items() if k != "PSYCOPG_IMPL"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout)
    assert found["impl"] != "binary", found
    assert len(found["libpq"]) == 1, found
    assert "site-packages" not in found["libpq"][0], found
    assert len(found["libcrypto"]) == 1, found
