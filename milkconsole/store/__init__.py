"""The local SQLite store: schema and migrations, the one writer, session queries, the outbox."""

from milkconsole.store.db import Database, default_db_path, open_database
from milkconsole.store.outbox import Outbox, OutboxItem, enqueue
from milkconsole.store.recorder import CompletionHook, Recorder
from milkconsole.store.sessions import SESSION_MODEL, SessionRecord, SessionStore

__all__ = [
    "SESSION_MODEL",
    "CompletionHook",
    "Database",
    "Outbox",
    "OutboxItem",
    "Recorder",
    "SessionRecord",
    "SessionStore",
    "default_db_path",
    "enqueue",
    "open_database",
]
