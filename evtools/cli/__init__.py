"""The command line: click commands that parse, build the pieces and run them; no logic of their own."""

from .main import main

__all__ = ("main",)
