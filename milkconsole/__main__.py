from milkconsole.app.entry import main

raise SystemExit(main())
