"""Start-up: the command line, the runtime that wires a parlour together, the headless gateway,
logging."""
