"""augspec's own exceptions.

Every error augspec raises on purpose is one of these; each subclasses ValueError
or TypeError so that code written against the standard exceptions still works.
"""

from __future__ import annotations


class AugspecError(Exception):
    """Base of every augspec error."""


class SpecError(AugspecError, ValueError):
    """A spec was built with a hyper-parameter outside its allowed range."""


class SpecTypeError(AugspecError, TypeError):
    """A spec was built with a hyper-parameter of the wrong type."""


class InputError(AugspecError, ValueError):
    """Images or labels of the wrong shape, size or value."""


class InputTypeError(AugspecError, TypeError):
    """Images or labels of the wrong type or dtype."""


class RegistryError(AugspecError, ValueError):
    """An op, kernel or backend could not be found or registered."""


class DuplicateNameError(RegistryError):
    """Two registrants claimed the same name."""


class BackendUnavailableError(RegistryError):
    """A registered backend whose framework is not installed."""


class ConfigError(AugspecError, ValueError):
    """A serialized pipeline that cannot be loaded."""


class ConfigTypeError(AugspecError, TypeError):
    """A serialized pipeline with a value of the wrong type."""


class PluginWarning(UserWarning):
    """A plugin failed to load or register; the others went on."""


class InputRangeWarning(UserWarning):
    """Floating-point images with values outside [0, 1] (augspec reads floats as [0, 1])."""
