"""One error type for everything the user can fix; the CLI turns it into one line and exit code 2."""

from __future__ import annotations

from pathlib import Path


class B2ctError(Exception):
    """A problem in the user's input or environment.

    ``where`` is ``file:line`` or a field path; ``hint`` says how to fix it.
    """

    exit_code = 2

    def __init__(self, message: str, *, where: str | Path | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = str(where) if where is not None else None
        self.hint = hint

    def oneline(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        # One line, always: messages quoting user input must not break the contract.
        return " ".join(text.split())


def die(message: str, *, where: str | Path | None = None, hint: str | None = None) -> None:
    raise B2ctError(message, where=where, hint=hint)
