"""Start-up, the top layer: the command line (`cli`), the program's entry point (`entry`, the one
module that starts the console, the demo and the simulators), the runtime that wires a parlour
together (`runtime`), the headless gateway (`gateway`) and the backup command (`backup_cli`)."""
