"""People at the console: users and their PINs (`users`, `pins`), the PIN lock (`lock`), the
`milkconsole users` command (`users_cli`) and what a person does to an alert (`alerts`).

Who may do what is `milkconsole.grants`; what people did is kept by the store (`store.users`,
`store.audit`, `store.alerts`), and the audit log's CSV export is `milkconsole.reports.audit`."""
