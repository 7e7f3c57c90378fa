"""The local SQLite store: schema and migrations, the one writer, session queries, the outbox."""
