"""The cows: the herd file, who a tag belongs to, milk withdrawals and what must be kept out of the
tank."""
