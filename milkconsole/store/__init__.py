"""The local SQLite store: schema and migrations, the one writer, session queries and their
packed flow curves (`curves`, `flow_curves`), the outbox and the one module that builds what goes
out of it (`outbound`), what is kept how long (`retention`), and backups (`backup`).

The ORM mappings (`schema`) are private to this package: the rest of the console gets frozen
values from modules named after what they hold, e.g. who wears a tag (`tags`), the herd
(`herd`, `directory`), what milk health reads and writes (`health`), the dashboard's reads
(`dashboard`), the reports' (`history`), and bulk writes for benchmarks (`bulk`)."""

from milkconsole.store.db import Database, default_db_path, open_database
from milkconsole.store.outbox import Outbox, OutboxItem
from milkconsole.store.recorder import Recorder
from milkconsole.store.session_writes import CompletionHook
from milkconsole.store.sessions import SessionRecord, SessionStore

__all__ = [
    "CompletionHook",
    "Database",
    "Outbox",
    "OutboxItem",
    "Recorder",
    "SessionRecord",
    "SessionStore",
    "default_db_path",
    "open_database",
]
