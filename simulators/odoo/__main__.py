"""`python -m simulators.odoo`: a standalone simulated Odoo (see `server.main` for the options)."""

from simulators.odoo.server import main

raise SystemExit(main())
