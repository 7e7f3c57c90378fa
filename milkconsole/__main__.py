from milkconsole.cli import main

raise SystemExit(main())
