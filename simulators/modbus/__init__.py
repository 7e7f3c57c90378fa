"""A Modbus slave written from the spec, over TCP (MBAP) and RTU (a pty pair standing for RS-485).

It deliberately shares no code with pymodbus, so it checks our pymodbus-based client from the
outside, and it lets tests inject faults at the byte level: silence, a wrong CRC, an exception
answer, a slow reply.

- `registers`: `RegisterBank`, thread-safe holding/input registers per unit id, with the address
  ranges each unit defines, the registers it lets a master write, and its current faults
  (`UnitFaults`). `RegisterBank.execute` is the application layer (functions 03, 04, 06, 16).
- `responder`: what both servers do with a request PDU: apply the unit's faults, execute, count.
- `tcp`: `ModbusTcpServer`, MBAP framing, one thread per client connection, none busy when idle.
- `rtu`: `ModbusRtuServer`, RTU framing with CRC-16/MODBUS on the master end of a pty; the client
  opens `port_path` (or the `link` symlink) as if it were a USB RS-485 adapter. Several units on
  one server share the line the way meters share one bus.

Import from the module that holds a name; this package re-exports nothing.
"""
