"""The plugin layer: the pluggy hook specifications, the loader that fills the core's
registry (``manager``) and the built-ins, registered through the same hook (``builtin``)."""
