"""The bundle's entry point: the `milkconsole` command (console, gateway, every subcommand)."""

from milkconsole.app.entry import main

if __name__ == "__main__":
    raise SystemExit(main())
