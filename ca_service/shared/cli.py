"""What the command-line programs share: logging set-up and the one-line error exit."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

__all__ = ["configure_logging", "fail"]


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def fail(program: str, message: str, code: int = 1) -> NoReturn:
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(code)
