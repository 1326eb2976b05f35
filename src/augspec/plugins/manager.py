"""The plugin layer: fills the core's registry through pluggy.

On first use of the registry (``augspec.core.registry.get_registry``), the
loader installed here makes a ``pluggy.PluginManager("augspec")``, registers the
built-ins (``builtin.py``) and every entry point of the group ``augspec`` (except
those named in ``AUGSPEC_DISABLE_PLUGINS``, comma separated), then calls each
plugin's ``augspec_register(registry)`` on its own: a plugin that raises is
reported by name (a ``PluginWarning`` and ``plugin_errors()``), what it added is
dropped, and the others still load.
"""

from __future__ import annotations

import os
import warnings

import pluggy

from ..core import registry as core_registry
from ..core.errors import PluginWarning
from ..core.registry import (  # noqa: F401  (the plugin layer's public names)
    ENTRY_POINT_GROUP,
    BackendInfo,
    OpInfo,
    Registrar,
    Registry,
    compile_pipeline,
    get_registry,
    list_backends,
    list_ops,
    load_backend,
    plugin_errors,
    register,
    register_kernel,
    reset_registry,
)
from . import hookspecs

DISABLE_ENV = "AUGSPEC_DISABLE_PLUGINS"

_pm: pluggy.PluginManager | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The plugin manager that filled the current registry."""
    get_registry()
    assert _pm is not None
    return _pm


def load_plugins(reg: Registry) -> None:
    """The registry's loader: the built-ins, then every installed plugin."""
    global _pm
    from . import builtin

    pm = pluggy.PluginManager("augspec")
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name="augspec.builtin")
    blocked = {s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()}
    for b in blocked:
        pm.set_blocked(b)
    _load_entry_points(pm, reg, blocked)
    # registration order (get_hookimpls' order): the built-ins first, so a plugin that
    # claims a built-in name is the one reported, never the built-ins
    for impl in pm.hook.augspec_register.get_hookimpls():
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        registrar = Registrar(reg, name)
        try:
            impl.function(registrar)
        except Exception as e:  # a plugin's fault must not stop the others
            if name == "augspec.builtin":
                raise
            _report(reg, name, f"{type(e).__name__}: {e}")
            continue
        registrar.commit()
    _pm = pm


def _load_entry_points(pm: pluggy.PluginManager, reg: Registry, blocked: set[str]) -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:
            _report(reg, ep.name, f"could not load ({type(e).__name__}: {e})")


def _report(reg: Registry, name: str, message: str) -> None:
    reg.errors.append((name, message))
    warnings.warn(f"augspec plugin {name!r} failed: {message}", PluginWarning, stacklevel=3)


core_registry.set_loader(load_plugins)
