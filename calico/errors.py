"""The errors meant for the user: the CLI prints their message on one line, without a traceback.

They live here, below everything, so that any module can raise them without importing the CLI.
"""

from __future__ import annotations


class CalicoError(Exception):
    """An error with a message meant for the user (no traceback is printed)."""


class DataError(CalicoError):
    """Bad or missing input data. The message names the file (or table row) and what is wrong."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)
