"""Child of test_prune_concurrent: a separate process writing backups while prune runs.

Run as ``python writer_child.py ROOT NAME COUNT``; the passphrase comes from the
environment. Writes COUNT backups ``NAME-000``, ``NAME-001``, … with one long-lived
Repository (its index loaded once, at the start, as a server process would), printing
``committed <id>`` after each; a backup refused because collection held the lock for too
long is retried.
"""

from __future__ import annotations

import io
import os
import random
import sys
import time
from datetime import UTC, datetime

from respaldo.errors import RepositoryLocked
from respaldo.repository import BackupWriter, Repository
from respaldo.storage.local import LocalStorage
from tests.integration.prune.concurrent_data import PACK_SIZE, data_for


def main() -> int:
    root, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    repo = Repository.open(
        LocalStorage(root), os.environ["RESPALDO_PASSPHRASE"], pack_size=PACK_SIZE
    )
    repo.lock_wait = 5
    rng = random.Random(name)
    for i in range(count):
        backup_id = f"{name}-{i:03d}"
        while True:
            try:
                with BackupWriter(repo, backup_id) as writer:
                    writer.write_stream("dump", io.BytesIO(data_for(backup_id)))
                    writer.commit(kind="full", source=name, started_at=datetime.now(UTC))
                break
            except RepositoryLocked:
                print(f"refused {backup_id}", flush=True)
        print(f"committed {backup_id}", flush=True)
        time.sleep(rng.uniform(0.05, 0.4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
