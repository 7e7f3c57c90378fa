"""A keyring backend in memory: the stand-in for the OS keyring, which no test or benchmark
machine has. It speaks keyring's own backend interface and is installed with
`keyring.set_keyring(MemoryKeyring())` or `with memory_keyring():`, so the code under test
calls the real keyring API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import keyring
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@contextmanager
def memory_keyring() -> Iterator[MemoryKeyring]:
    """Install a fresh `MemoryKeyring` as keyring's backend for the block; restore the previous
    backend after it."""
    previous = keyring.get_keyring()
    vault = MemoryKeyring()
    keyring.set_keyring(vault)
    try:
        yield vault
    finally:
        keyring.set_keyring(previous)
