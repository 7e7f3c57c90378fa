"""The meter pipeline: profiles, decode, transport, poller, meter health, readings, RFID, the
stall tracker, events."""
