"""Errors the core raises at its edges, each naming the file, key or value that was refused."""

from __future__ import annotations

import sys
from collections.abc import Callable


class MilkConsoleError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigError(MilkConsoleError):
    """A parlour config file was refused. The message names the file and the key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


class ProfileError(ConfigError):
    """A meter register-map profile was refused. The message names the file and the key."""


class DatabaseError(MilkConsoleError):
    """The local database cannot be used (newer than this code, unreadable, ...)."""


class TransportError(MilkConsoleError):
    """A Modbus request failed. `kind` is one of: timeout, crc, exception, connection."""

    def __init__(self, kind: str, message: str, exception_code: int | None = None) -> None:
        self.kind = kind
        self.exception_code = exception_code
        super().__init__(message)


def run_reporting_errors(command: Callable[[], int]) -> int:
    """Run a command, turning the core's errors into the documented exit statuses and one line
    on stderr (the message already names the file and key): 0 ok, 2 bad input (config,
    profile, CSV), 3 database refused, 1 anything else, 130 interrupted."""
    try:
        return command()
    except ConfigError as exc:
        print(f"milkconsole: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:
        print(f"milkconsole: {exc}", file=sys.stderr)
        return 3
    except MilkConsoleError as exc:
        print(f"milkconsole: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
