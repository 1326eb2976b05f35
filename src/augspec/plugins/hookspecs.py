"""The hook specifications of augspec's plugin system (project name ``augspec``).

A plugin is a module or object with ``augspec.hookimpl``-marked functions,
found through the entry-point group ``augspec``::

    # pyproject.toml of the plugin package
    [project.entry-points.augspec]
    my_plugin = "my_package.augspec_plugin"

    # my_package/augspec_plugin.py
    import augspec

    @augspec.hookimpl
    def augspec_register(registry):
        registry.add_op(MyOp)                         # a spec class with a name
        registry.add_kernel("my_op", "torch", fn)      # optional native kernel
        registry.add_backend("mxnet", "my_package.mx_backend:MxBackend", requires=("mxnet",))
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("augspec")
hookimpl = pluggy.HookimplMarker("augspec")


@hookspec
def augspec_register(registry) -> None:  # type: ignore[no-untyped-def]
    """Add ops, kernels and backends to ``registry`` (a ``Registrar`` bound to this plugin).

    A name already taken raises ``DuplicateNameError`` naming both registrants.
    If this hook raises, nothing it added is kept, the error is reported with the
    plugin's name, and the other plugins load as usual.
    """
