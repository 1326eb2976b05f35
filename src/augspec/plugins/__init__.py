"""Plugins: the pluggy hook specifications, the plugin manager and the registry."""
