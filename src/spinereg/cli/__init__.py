"""The ``spinereg`` command line (Typer).  Outermost layer."""

from spinereg.cli._app import app, main

__all__ = ["app", "main"]
