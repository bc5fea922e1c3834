"""Which bucket lifecycle rules take a repository's current objects away
(:mod:`respaldo.storage.lifecycle`); the refusal at ``init`` is tested on moto in
tests/integration/offsite/test_lifecycle.py."""

from __future__ import annotations

from typing import Any

import pytest

from respaldo.storage.lifecycle import REPOSITORY_NAMES, hazards

EXPIRE = {"Expiration": {"Days": 30}}


def _rule(**fields: Any) -> dict[str, Any]:
    return {"ID": "r", "Status": "Enabled", **fields}


@pytest.mark.parametrize(
    ("rule", "key_prefix"),
    [
        (_rule(Filter={}, **EXPIRE), "erp/"),
        (_rule(Prefix="", **EXPIRE), "erp/"),  # the legacy form
        (_rule(Filter={"Prefix": "er"}, **EXPIRE), "erp/"),
        (_rule(Filter={"Prefix": "erp/packs/"}, **EXPIRE), "erp/"),  # a part of the store
        (_rule(Filter={"Prefix": "packs/"}, **EXPIRE), ""),  # a store that is the bucket
        (_rule(Filter={"Prefix": "pa"}, **EXPIRE), ""),
        (_rule(Filter={"Prefix": "conf"}, **EXPIRE), ""),
        (_rule(Filter={"Prefix": "wal/0000/"}, **EXPIRE), ""),
        (_rule(Filter={}, **EXPIRE), ""),
        (_rule(Filter={"And": {"Prefix": "erp/", "ObjectSizeGreaterThan": 1}}, **EXPIRE), "erp/"),
        (_rule(Filter={"ObjectSizeGreaterThan": 1}, **EXPIRE), "erp/"),
        (_rule(Filter={}, Expiration={"Date": "2027-01-01T00:00:00Z"}), "erp/"),
        (_rule(Filter={}, Transitions=[{"Days": 0, "StorageClass": "GLACIER"}]), "erp/"),
    ],
)
def test_rules_that_take_current_objects_are_hazards(rule: dict[str, Any], key_prefix: str) -> None:
    (found,) = hazards([rule], key_prefix)
    assert found.startswith("lifecycle rule 'r'")


@pytest.mark.parametrize(
    "rule",
    [
        _rule(Filter={"Prefix": "crm/"}, **EXPIRE),
        _rule(Filter={}, **EXPIRE) | {"Status": "Disabled"},
        _rule(Filter={"Tag": {"Key": "k", "Value": "v"}}, **EXPIRE),
        _rule(Filter={"And": {"Prefix": "", "Tags": [{"Key": "k", "Value": "v"}]}}, **EXPIRE),
        _rule(Filter={}, NoncurrentVersionExpiration={"NoncurrentDays": 37}),
        _rule(Filter={}, Expiration={"ExpiredObjectDeleteMarker": True}),
        _rule(Filter={}, Transitions=[{"Days": 30, "StorageClass": "STANDARD_IA"}]),
        _rule(Filter={}, Transitions=[{"Days": 30, "StorageClass": "GLACIER_IR"}]),
        _rule(Filter={}, NoncurrentVersionTransitions=[{"StorageClass": "DEEP_ARCHIVE"}]),
        _rule(Filter={}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 7}),
    ],
)
def test_rules_that_leave_current_objects_alone_are_fine(rule: dict[str, Any]) -> None:
    assert hazards([rule], "erp/") == []


@pytest.mark.parametrize(
    ("prefix", "key_prefix"),
    [
        ("logs/", ""),  # the bucket's root is the repository: other folders are not its
        ("x/", ""),
        ("configuration/", ""),  # "config" is one key, not a folder
        ("erp/logs/", "erp/"),
        ("crm/", "erp/"),
    ],
)
def test_rules_on_prefixes_the_repository_never_writes_are_fine(
    prefix: str, key_prefix: str
) -> None:
    assert hazards([_rule(Filter={"Prefix": prefix}, **EXPIRE)], key_prefix) == []


def test_the_names_checked_are_every_prefix_the_repository_writes() -> None:
    from respaldo.repository.config_file import CONFIG_NAME
    from respaldo.repository.index import INDEX_PREFIX
    from respaldo.repository.keys import KEY_PREFIX
    from respaldo.repository.locks import LOCK_PREFIX
    from respaldo.repository.manifest import MANIFEST_PREFIX
    from respaldo.repository.packs import PACK_PREFIX
    from respaldo.repository.quarantine import QUARANTINE_PREFIX
    from respaldo.repository.wal import CLUSTER_PREFIX, WAL_PREFIX

    written = {
        CONFIG_NAME,
        INDEX_PREFIX,
        KEY_PREFIX,
        LOCK_PREFIX,
        MANIFEST_PREFIX,
        PACK_PREFIX,
        QUARANTINE_PREFIX,
        CLUSTER_PREFIX,
        WAL_PREFIX,
    }
    assert set(REPOSITORY_NAMES) == written
