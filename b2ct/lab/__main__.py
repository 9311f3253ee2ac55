"""`python -m b2ct.lab …`: the lab commands alone, usable while other command modules are broken or absent."""

from __future__ import annotations

import sys

from b2ct.entry import run
from b2ct.lab.commands import lab_app


def main(argv: list[str] | None = None) -> int:
    return run(lab_app, argv, prog_name="b2ct lab")


if __name__ == "__main__":
    sys.exit(main())
