"""The registry of ops, kernels and backends, filled through pluggy.

On first use, a ``pluggy.PluginManager("augspec")`` registers the built-ins
(``builtin.py``) and every entry point of the group ``augspec`` (except those
named in ``AUGSPEC_DISABLE_PLUGINS``, comma separated), then calls each
plugin's ``augspec_register(registry)`` on its own: a plugin that raises is
reported by name (a ``PluginWarning`` and ``plugin_errors()``), what it added is
dropped, and the others still load. ``@augspec.register`` adds an op in-process.

The kernel table maps ``(op name, backend name)`` to a function with the
signature of the op family's method (``matrix``, ``affine``, ``pixels``,
``mask``, ``mix``, ``labels``, ``features``); the op's own method is the
generic kernel, written against the backend namespace, used where no backend
kernel is registered.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ..core.errors import BackendUnavailableError, DuplicateNameError, RegistryError, SpecTypeError
from ..core.spec import Op
from . import hookspecs

ENTRY_POINT_GROUP = "augspec"
DISABLE_ENV = "AUGSPEC_DISABLE_PLUGINS"

#: the family method that is an op's generic kernel
KERNEL_METHODS = {"geometric": "matrix", "color": "affine", "pixel": "pixels", "region": "mask",
                  "mix": "mix", "label": "labels", "feature": "features"}


class PluginWarning(UserWarning):
    """A plugin failed to load or register; the others went on."""


@dataclass(frozen=True)
class OpInfo:
    name: str
    family: str
    cls: type
    registrant: str


@dataclass(frozen=True)
class BackendInfo:
    name: str
    factory: Any
    requires: tuple[str, ...]
    install: str
    registrant: str

    @property
    def available(self) -> bool:
        if callable(self.factory):
            mods: tuple[str, ...] = self.requires
        else:
            mods = (*self.requires, self.factory.split(":")[0])
        try:
            return all(importlib.util.find_spec(m) is not None for m in mods)
        except (ImportError, ValueError):
            return False


@dataclass
class Registry:
    ops: dict[str, OpInfo] = field(default_factory=dict)
    kernels: dict[tuple[str, str], tuple[Callable, str]] = field(default_factory=dict)
    backends: dict[str, BackendInfo] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def kernel(self, op: Op, backend: str) -> Callable | None:
        """The backend's registered kernel for this op, else its generic one, else None."""
        hit = self.kernels.get((op.name, backend))
        if hit is not None:
            return hit[0]
        method = generic_kernel_name(op)
        if method is None:
            return None
        fn = getattr(type(op), method, None)
        base = _family_base(op)
        if fn is None or (base is not None and getattr(base, method, None) is fn):
            return None
        return fn

    def get_backend(self, name: str) -> BackendInfo:
        if not isinstance(name, str):
            raise SpecTypeError(f"backend must be a name (a string), got {name!r}")
        if name not in self.backends:
            raise RegistryError(f"unknown backend {name!r}; known backends: {', '.join(sorted(self.backends))}, auto")
        info = self.backends[name]
        if not info.available:
            raise BackendUnavailableError(
                f"backend {name!r} is not available: it needs {', '.join(info.requires)}; install it with: {info.install}")
        return info


def generic_kernel_name(op: Op) -> str | None:
    from ..core.plan import _kind

    kind = _kind(op)
    if kind == "container":
        return None
    if kind == "pixel" and op.family == "color":
        return "pixels"
    return KERNEL_METHODS.get(kind)


def _family_base(op: Op) -> type | None:
    from ..core import spec as s

    for base in (s.GeometricOp, s.PixelOp, s.RegionOp, s.MixOp, s.LabelOp, s.FeatureOp):
        if isinstance(op, base):
            return base
    if isinstance(op, s.ColorOp):
        return s.ColorOp if generic_kernel_name(op) == "affine" else None
    return None


class Registrar:
    """What a plugin's hook receives: adds are staged and kept only if the hook succeeds."""

    def __init__(self, registry: Registry, registrant: str):
        self._reg = registry
        self.registrant = registrant
        self._ops: dict[str, OpInfo] = {}
        self._kernels: dict[tuple[str, str], tuple[Callable, str]] = {}
        self._backends: dict[str, BackendInfo] = {}

    def _taken(self, table: dict, staged: dict, key: Any, what: str) -> None:
        if key in table or key in staged:
            other = (table.get(key) or staged.get(key))
            by = other[1] if isinstance(other, tuple) else other.registrant
            raise DuplicateNameError(
                f"{what} {key!r} registered by {self.registrant!r} is already registered by {by!r}")

    def add_op(self, cls: type, name: str | None = None) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Op)):
            raise SpecTypeError(f"{self.registrant}: add_op takes an Op subclass, got {cls!r}")
        name = name or cls.name
        if not name or not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise RegistryError(f"{self.registrant}: op {cls.__name__} needs a snake_case name (class attribute 'name')")
        if not cls.name:
            cls.name = name
        self._taken(self._reg.ops, self._ops, name, "op")
        self._ops[name] = OpInfo(name, cls.family, cls, self.registrant)
        return cls

    def add_kernel(self, op_name: str, backend: str, fn: Callable) -> None:
        self._taken(self._reg.kernels, self._kernels, (op_name, backend), "kernel")
        self._kernels[(op_name, backend)] = (fn, self.registrant)

    def add_backend(self, name: str, factory: Any, *, requires: tuple[str, ...] = (), install: str = "") -> None:
        self._taken(self._reg.backends, self._backends, name, "backend")
        self._backends[name] = BackendInfo(name, factory, tuple(requires), install or f"install {name}",
                                           self.registrant)

    def commit(self) -> None:
        self._reg.ops.update(self._ops)
        self._reg.kernels.update(self._kernels)
        self._reg.backends.update(self._backends)


_lock = threading.RLock()
_registry: Registry | None = None
_pm: pluggy.PluginManager | None = None


def plugin_manager() -> pluggy.PluginManager:
    get_registry()
    assert _pm is not None
    return _pm


def get_registry() -> Registry:
    """The registry, filled on first use (built-ins, then installed plugins)."""
    global _registry, _pm
    if _registry is not None:
        return _registry
    with _lock:
        if _registry is not None:
            return _registry
        from . import builtin

        pm = pluggy.PluginManager("augspec")
        pm.add_hookspecs(hookspecs)
        pm.register(builtin, name="augspec.builtin")
        reg = Registry()
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
        _pm, _registry = pm, reg
        return reg


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


def reset_registry() -> None:
    """Forget the registry (tests; plugins installed since are found on next use)."""
    global _registry, _pm
    with _lock:
        _registry, _pm = None, None


# ------------------------------------------------------------ public helpers


def register(cls: type | None = None, *, name: str | None = None) -> Any:
    """Class decorator: register an op in-process under ``name`` (default ``cls.name``)."""

    def deco(c: type) -> type:
        with _lock:
            r = Registrar(get_registry(), f"{c.__module__}.{c.__qualname__}")
            r.add_op(c, name)
            r.commit()
        return c

    return deco(cls) if cls is not None else deco


def register_kernel(op_name: str, backend: str) -> Callable[[Callable], Callable]:
    """Decorator: a backend-specific kernel for a registered op (the family method's signature)."""

    def deco(fn: Callable) -> Callable:
        with _lock:
            r = Registrar(get_registry(), f"{fn.__module__}.{fn.__qualname__}")
            r.add_kernel(op_name, backend, fn)
            r.commit()
        return fn

    return deco


def list_ops() -> list[OpInfo]:
    """Every registered op, by name."""
    return sorted(get_registry().ops.values(), key=lambda o: o.name)


def list_backends() -> list[BackendInfo]:
    """Every registered backend; ``.available`` says whether its framework is installed."""
    return sorted(get_registry().backends.values(), key=lambda b: b.name)


def plugin_errors() -> list[tuple[str, str]]:
    """(plugin name, message) for each plugin that failed to load or register."""
    return list(get_registry().errors)


def load_backend(name: str, **options: Any) -> Any:
    info = get_registry().get_backend(name)
    factory = info.factory
    if isinstance(factory, str):
        mod, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(mod), attr)
    return factory(**options)


_RUN_OPTIONS = ("fuse", "epoch", "rank", "worker")


def compile_pipeline(pipeline: Any, backend: str, **options: Any) -> Any:
    if backend == "auto":
        return AutoRun(pipeline, options)
    run_opts = {k: options.pop(k) for k in _RUN_OPTIONS if k in options}
    b = load_backend(backend, **options)
    reg = get_registry()
    from ..core.plan import flatten

    for lf in flatten(pipeline.ops)[0]:
        if reg.kernel(lf.op, b.name) is None:
            raise RegistryError(
                f"op {lf.op.name!r} has no kernel for the {b.name!r} backend (no generic kernel and none registered)")
    return b.make_run(pipeline, kernels=_kernel_table(reg, pipeline, b.name), **run_opts)


def _kernel_table(reg: Registry, pipeline: Any, backend: str) -> dict[str, Callable]:
    from ..core.plan import flatten

    return {lf.op.name: reg.kernels[(lf.op.name, backend)][0]
            for lf in flatten(pipeline.ops)[0] if (lf.op.name, backend) in reg.kernels}


_AUTO = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "keras": "tensorflow"}


class AutoRun:
    """``compile("auto")``: picks the backend from the type of the first images."""

    def __init__(self, pipeline: Any, options: dict[str, Any]):
        self.pipeline, self.options, self.run = pipeline, options, None

    def _resolve(self, images: Any) -> Any:
        if self.run is None:
            root = type(images).__module__.split(".")[0]
            name = _AUTO.get(root, "numpy" if isinstance(images, (list, tuple)) else None)
            if name is None:
                raise SpecTypeError(f"backend 'auto' cannot tell the framework of a {type(images).__name__}")
            self.run = compile_pipeline(self.pipeline, name, **dict(self.options))
        return self.run

    def __call__(self, images: Any, labels: Any = None, **kw: Any) -> Any:
        return self._resolve(images)(images, labels, **kw)

    def apply(self, images: Any, labels: Any = None, params: Any = None) -> Any:
        return self._resolve(images).apply(images, labels, params)

    def __getattr__(self, name: str) -> Any:
        if name in ("pipeline", "options", "run"):
            raise AttributeError(name)
        if self.run is None:
            raise RegistryError("backend 'auto' is chosen at the first call: call the run on images first")
        return getattr(self.run, name)
