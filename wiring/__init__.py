"""The wiring that knows every service: the command line, the demo loader and sender, test helpers."""
