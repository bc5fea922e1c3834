"""``respaldo metrics [--textfile PATH]``: the Prometheus metrics where no service runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from respaldo.cli.app import app, state
from respaldo.operations.context import Context


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            help="Write them to this *.prom file (atomically) for node_exporter's textfile "
            "collector, instead of printing them.",
        ),
    ] = None,
) -> None:
    """Print the Prometheus metrics (the text of GET /metrics), or write them for
    node_exporter's textfile collector: run it from cron where no service runs.

    Read from the catalog; repository sizes are measured at every run. A file that
    cannot be written is left as it was (exit status 1).
    """
    # prometheus_client is imported by this command only (see serve_cmd.py).
    from respaldo.operations.metrics import render_metrics, write_textfile

    with Context.open(state(ctx).settings) as context:
        if textfile is None:
            sys.stdout.buffer.write(render_metrics(context))
            sys.stdout.flush()
        else:
            write_textfile(context, textfile.absolute())
