"""The cows: the herd file and people's changes to the herd, the herd as the console holds it
(`directory`), whether a milking fits the cow its tag names (`identity`), milk withdrawals and
what must be kept out of the tank. Who wears a tag is looked up in the store (`store.tags`)."""
