"""Errors raised on bad input data: always name the file and the problem."""

from __future__ import annotations


class DataError(Exception):
    """Bad or missing input data. The message names the file (or table row) and what is wrong."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)
