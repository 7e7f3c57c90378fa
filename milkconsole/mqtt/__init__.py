"""Milking events to the farm's MQTT broker: the `[mqtt]` settings, the one paho-mqtt wrapper,
and the publisher that sends the outbox's 'mqtt' rows (built by `milkconsole.store.outbound`)
at QoS 1, marking each sent only after the broker's PUBACK."""
