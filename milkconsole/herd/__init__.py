"""The cows, as rules and values with no database: the herd file (`file`), the herd as the
console holds it (`directory`), whether a milking fits the cow its tag names (`identity`), milk
withdrawals (`withdrawal`) and what must be kept out of the tank (`separation`).

Who wears a tag is looked up in the store (`store.tags`); a supervisor's changes to the herd and
the `milkconsole herd` command are `milkconsole.supervision.herd_changes` and `herd_cli`."""
