"""What prune and a files backup record in English, said in Spanish where the reader's
language is Spanish (respaldo.reasons): a files backup's warnings, kept in its manifest
and listed on its page, the paths that failed one (its job's error), and what prune
could not finish in a repository with its alert's hint. Texts are made by the code that
writes them wherever it can be called alone, so that a sentence changed there fails
here; what the OS or a person wrote stays as written, and the English reads as stored
(rows written before this session read in Spanish too: it is the stored text that is
recognised)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from respaldo import reasons
from respaldo.errors import SourceError
from respaldo.i18n import translations
from respaldo.operations.files_backup import _refuse_incomplete
from respaldo.repository.locks import LockInfo, LockKind, _locked
from respaldo.storage.lifecycle import HAZARD_HINT

pytestmark = pytest.mark.unit

ES = translations("es").gettext
EN = translations("en").gettext
NOW = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)


def _both(text: str) -> str:
    """``text`` in Spanish; its English is ``text`` itself."""
    assert reasons.reason(text, EN) == text
    return reasons.reason(text, ES)


@pytest.mark.parametrize(
    ("warning", "spanish"),
    [
        (
            "/srv/erp/adjuntos/factura 7.pdf vanished before it was read",
            "/srv/erp/adjuntos/factura 7.pdf desapareció antes de leerse",
        ),
        (
            "/srv/erp/tmp vanished before it was listed",
            "/srv/erp/tmp desapareció antes de listarse",
        ),
        (
            "/srv/erp/adjuntos/factura 7.pdf was replaced before it was read",
            "/srv/erp/adjuntos/factura 7.pdf fue reemplazado antes de leerse",
        ),
        (
            "/srv/erp/logs/app.log grew while read: cut at 40960 bytes",
            "/srv/erp/logs/app.log creció mientras se leía: cortado en 40960 bytes",
        ),
        (
            "/srv/erp/run/app.sock: special file, skipped",
            "/srv/erp/run/app.sock: archivo especial, omitido",
        ),
        (
            "/srv/erp/backups: respaldo's own repository local, left out",
            "/srv/erp/backups: el repositorio local del propio respaldo, omitido",
        ),
        (
            "/srv/erp/uploads is a link to the directory /data/uploads, outside the file set: "
            "its files are not backed up",
            "/srv/erp/uploads es un enlace al directorio /data/uploads, fuera del conjunto de "
            "archivos: sus archivos no se respaldan",
        ),
        (
            "/srv/erp/cache: respaldo's own cache, left out",
            "/srv/erp/cache: la caché del propio respaldo, omitida",
        ),
        (
            "/srv/erp/catalog.db-wal: respaldo's own catalog, left out",
            "/srv/erp/catalog.db-wal: el catálogo del propio respaldo, omitido",
        ),
    ],
)
def test_a_files_backups_warnings_read_in_spanish(warning: str, spanish: str) -> None:
    assert _both(warning) == spanish


def test_a_path_with_a_colon_or_of_a_person_is_shown_as_stored() -> None:
    # A path is told up to its first colon (no long error scanned at each ": "): one with
    # a colon in it stays as written, as does a warning no phrase knows.
    for stored in ("/srv/a:b vanished before it was read", "backed up with care"):
        assert _both(stored) == stored


def test_the_paths_that_failed_a_files_backup_read_in_spanish_with_the_oss_words() -> None:
    errors = [f"/srv/erp/privado/{n}.pdf: cannot read: Permission denied" for n in range(7)]
    errors[1] = "/srv/erp/privado: cannot list: Permission denied"
    errors[2] = "/srv/erp/db.sqlite: changed while read, 3 times (the backup holds a torn copy)"
    with pytest.raises(SourceError) as caught:
        _refuse_incomplete("uploads", errors)
    assert _both(str(caught.value)) == (
        "conjunto de archivos uploads: 7 rutas no se pudieron respaldar enteras: "
        "/srv/erp/privado/0.pdf: no se puede leer: Permission denied; "
        "/srv/erp/privado: no se puede listar: Permission denied; "
        "/srv/erp/db.sqlite: cambió mientras se leía, 3 veces (el backup tendría una copia "
        "rota); /srv/erp/privado/3.pdf: no se puede leer: Permission denied; "
        "/srv/erp/privado/4.pdf: no se puede leer: Permission denied (y 2 más)"
    )
    assert caught.value.hint is not None
    assert _both(caught.value.hint) == (
        "dé al usuario de respaldo permiso de lectura sobre ellas, exclúyalas (exclude = "
        "[...] en el conjunto de archivos) o haga el backup mientras nada las reescriba; este "
        "backup queda registrado como fallido"
    )


def test_a_prune_that_backups_kept_out_of_a_repository_reads_in_spanish() -> None:
    # prune.py records a collection that failed as "garbage collection: <error> (<hint>)".
    holders = [
        LockInfo(
            name=f"locks/shared-{n}",
            kind=LockKind.SHARED,
            purpose=f"backup 20261206T0{n}0000Z-3f9a1c2e",
            host="db1",
            pid=4242 + n,
            created=NOW - timedelta(seconds=30),
            refreshed=NOW - timedelta(seconds=5),
        )
        for n in range(2)
    ]
    exc = _locked(LockKind.EXCLUSIVE, "garbage collection", holders, 600.0, NOW)
    recorded = f"garbage collection: {exc} ({exc.hint})"
    assert _both(recorded) == (
        "recolección de basura: el repositorio está en uso: bloqueo compartido para backup "
        "20261206T000000Z-3f9a1c2e (pid 4242 en db1, renovado hace 5 s); bloqueo compartido "
        "para backup 20261206T010000Z-3f9a1c2e (pid 4243 en db1, renovado hace 5 s) (la "
        "recolección de basura espera a los backups en curso; ejecute prune de nuevo cuando "
        "terminen; el bloqueo de un proceso que murió se ignora pasado 0:10:00 (al momento en "
        "el mismo host))"
    )
    # As the prune's result names it (PruneReport.found_failure).
    assert _both(f"prune could not finish in offsite: {recorded}").startswith(
        "la depuración no pudo terminar en offsite: recolección de basura: el repositorio "
        "está en uso: bloqueo compartido para backup 20261206T000000Z-3f9a1c2e"
    )


@pytest.mark.parametrize(
    ("hint", "spanish"),
    [
        (
            "run 'respaldo prune' again; it finishes what is left",
            "ejecute 'respaldo prune' de nuevo; termina lo que quedó pendiente",
        ),
        (
            "run 'respaldo repair offsite', then 'respaldo verify --all --repository offsite'",
            "ejecute 'respaldo repair offsite' y después 'respaldo verify --all --repository "
            "offsite'",
        ),
        (
            "kept backups are damaged: run 'respaldo verify --all --repository offsite', then "
            "'respaldo repair offsite'",
            "hay backups conservados dañados: ejecute 'respaldo verify --all --repository "
            "offsite' y después 'respaldo repair offsite'",
        ),
    ],
)
def test_prunes_hints_read_in_spanish(hint: str, spanish: str) -> None:
    assert _both(hint) == spanish


def test_a_hint_naming_two_repositories_where_one_is_meant_is_shown_as_stored() -> None:
    # The phrase says the same repository twice: a text naming two is not it.
    stored = "run 'respaldo repair offsite', then 'respaldo verify --all --repository local'"
    assert _both(stored) == stored


def test_the_lifecycle_rules_hint_reads_in_spanish() -> None:
    assert _both(HAZARD_HINT).startswith("respaldo borra él mismo los backups caducados (prune)")
