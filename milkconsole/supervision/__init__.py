"""People at the console: users and their PINs (`users`, `pins`), the PIN lock (`lock`), the
`milkconsole users` command (`users_cli`), what a person does to an alert (`alerts`) and a
supervisor's changes to the herd: the herd file's import and export, tags, treatments, milk kept
out (`herd_changes`, the `milkconsole herd` command in `herd_cli`).

Who may do what is `milkconsole.grants`; what people did is kept by the store (`store.users`,
`store.audit`, `store.alerts`), and the audit log's CSV export is `milkconsole.reports.audit`."""
