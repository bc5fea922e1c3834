"""The HTTP interface: a FastAPI application that ``respaldo serve`` hosts.

Routes are thin: parse the request, call one ``respaldo.operations`` function, return
its typed (pydantic) result, the same model ``--json`` prints. For now: ``GET /health``
and ``GET /metrics`` (Prometheus text).
"""

from respaldo.api.app import create_app

__all__ = ["create_app"]
