"""The built-in specs, one module per family."""
