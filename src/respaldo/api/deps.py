"""What routes take from the application: its context and its job workers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from respaldo.operations.context import Context
from respaldo.operations.workers import Workers


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def _workers(request: Request) -> Workers:
    workers: Workers = request.app.state.workers
    return workers


ContextDep = Annotated[Context, Depends(_context)]
WorkersDep = Annotated[Workers, Depends(_workers)]
