"""The S3 client is made from a model of the operations respaldo calls, and every call
in the module is to one of them.

S3's whole model (about 120 operations, 740 shapes) stayed in memory for the life of
every process that opens an S3 repository; a backup into S3 peaked ~2 MiB lower with
the cut. A call to an operation left out of the model would fail with AttributeError
only when it runs: the scan below fails first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from botocore import xform_name
from pydantic import SecretStr

import respaldo.storage.s3 as s3_module
from respaldo.storage.s3 import S3_OPERATIONS, S3Storage

pytestmark = pytest.mark.unit


def _store() -> S3Storage:
    # No request is made: creating a client only reads botocore's data.
    return S3Storage(
        "bucket",
        "prefix",
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        access_key_id="id",
        secret_access_key=SecretStr("secret"),
    )


def _client_calls() -> set[str]:
    """The methods the module calls on its client, and the operations it paginates."""
    tree = ast.parse(Path(s3_module.__file__).read_text())
    called: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Attribute) and owner.attr == "_client":
            if node.func.attr == "get_paginator":
                arg = node.args[0]
                assert isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                called.add(arg.value)
            else:
                called.add(node.func.attr)
    return called


def test_the_client_model_holds_only_the_operations_respaldo_calls() -> None:
    store = _store()
    try:
        model = store.client.meta.service_model
        assert set(model.operation_names) == set(S3_OPERATIONS)
        # The shapes of the other operations are gone too.
        assert len(model.shape_names) < 300
    finally:
        store.close()


def test_every_call_of_the_module_is_to_an_operation_of_the_model() -> None:
    store = _store()
    try:
        methods = {xform_name(name) for name in store.client.meta.service_model.operation_names}
    finally:
        store.close()
    # Client methods that are not S3 operations.
    not_operations = {"close", "get_paginator"}
    calls = _client_calls()
    assert {"put_object", "list_objects_v2", "upload_part"} <= calls  # the scan finds them
    assert calls - not_operations - methods == set()
