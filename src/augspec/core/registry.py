"""The registry: ops, kernels and backends by name, and ``compile``.

The table lives here, in the core; the plugin layer (the ``plugins`` package
beside the core) fills it. On first use, ``get_registry()`` runs the *loader* the plugin layer
installed with ``set_loader`` (the built-ins, then every installed plugin, each
through a ``Registrar``); without a loader the registry is empty, so the core
works, and is tested, with no plugin layer at all.

The kernel table maps ``(name, backend name)`` to a function:

- an op's name: a function with the signature of the op family's method
  (``matrix``, ``affine``, ``pixels``, ``mask``, ``mix``, ``labels``,
  ``features``); the op's own method is the generic kernel, written against the
  backend namespace, used where no backend kernel is registered;
- ``"stage.<kind>"`` (``stage_kernel_name``): a *stage kernel*, the backend's
  fast path for a whole planner stage of that kind (the fused warp, the fused
  colour map, the mask fill, the partner blend); see ``core/executor.py``.

A name taken twice is a ``DuplicateNameError`` naming both registrants.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BackendUnavailableError, DuplicateNameError, RegistryError, SpecTypeError
from .spec import Op

#: the entry-point group plugins are found through
ENTRY_POINT_GROUP = "augspec"

#: the family method that is an op's generic kernel
KERNEL_METHODS = {"geometric": "matrix", "color": "affine", "pixel": "pixels", "region": "mask",
                  "mix": "mix", "tile": "tiles", "label": "labels", "feature": "features", "synthetic": "generate"}

#: the planner's stage kinds; a backend may register one stage kernel per kind
STAGE_KINDS = ("geometric", "color", "pixel", "region", "mix", "tile", "label", "feature", "synthetic")

#: names no op may take: they mean something else in a config or in the table
RESERVED_NAMES = frozenset({"pipeline", "version", "type"})


def stage_kernel_name(kind: str) -> str:
    """The kernel-table name of the stage kernel of ``kind`` (``"stage.geometric"``)."""
    return f"stage.{kind}"


@dataclass(frozen=True)
class OpInfo:
    name: str
    family: str
    cls: type
    registrant: str


@dataclass(frozen=True)
class GeneratorInfo:
    """A registered generator: ``factory(**options)`` makes it (``core/synthetic.py``); a
    ``"module:attr"`` string is imported on first use."""

    name: str
    factory: Any
    registrant: str

    def make(self, options: dict[str, Any]) -> Any:
        from .errors import SpecError
        from .synthetic import check_generator

        fn = _resolve(self.factory)
        try:
            gen = fn(**options)
        except (TypeError, ValueError) as e:
            raise SpecError(f"generator {self.name!r}: options {options!r} rejected: {e}") from None
        return check_generator(self.name, gen)


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


def op_kind(op: Op) -> str:
    """The stage kind of an op: its family, except that a non-linear colour op is a pixel op."""
    if op.family == "color" and not getattr(op, "linear", True):
        return "pixel"
    return op.family


def generic_kernel_name(op: Op) -> str | None:
    kind = op_kind(op)
    if kind == "container":
        return None
    if kind == "pixel" and op.family == "color":
        return "pixels"
    return KERNEL_METHODS.get(kind)


def _family_base(op: Op) -> type | None:
    from . import spec as s

    for base in (s.GeometricOp, s.PixelOp, s.RegionOp, s.MixOp, s.TileOp, s.LabelOp, s.FeatureOp, s.SyntheticOp):
        if isinstance(op, base):
            return base
    if isinstance(op, s.ColorOp):
        return s.ColorOp if generic_kernel_name(op) == "affine" else None
    return None


def _resolve(fn: Any) -> Callable:
    """A kernel: callables as they are, ``"module:attr"`` imported."""
    if isinstance(fn, str):
        mod, _, attr = fn.partition(":")
        return getattr(importlib.import_module(mod), attr)
    return fn


@dataclass
class Registry:
    ops: dict[str, OpInfo] = field(default_factory=dict)
    kernels: dict[tuple[str, str], tuple[Callable, str]] = field(default_factory=dict)
    backends: dict[str, BackendInfo] = field(default_factory=dict)
    generators: dict[str, GeneratorInfo] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def get_generator(self, name: str) -> GeneratorInfo:
        if name not in self.generators:
            known = ", ".join(sorted(self.generators)) or "none"
            raise RegistryError(f"unknown generator {name!r}; known generators: {known}")
        return self.generators[name]

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

    def kernel_table(self, ops: Any, backend: str) -> dict[str, Callable]:
        """The kernels a run of ``ops`` on ``backend`` reads: registered op kernels of
        its ops and every stage kernel of the backend."""
        from .plan import flatten

        names = {lf.op.name for lf in flatten(ops)[0]} | {stage_kernel_name(k) for k in STAGE_KINDS}
        return {name: _resolve(fn) for (name, b), (fn, _) in self.kernels.items() if b == backend and name in names}

    def get_backend(self, name: str) -> BackendInfo:
        if not isinstance(name, str):
            raise SpecTypeError(f"backend must be a name (a string) or a Backend, got {name!r}")
        if name not in self.backends:
            raise RegistryError(f"unknown backend {name!r}; known backends: {', '.join(sorted(self.backends))}, auto")
        info = self.backends[name]
        if not info.available:
            raise BackendUnavailableError(
                f"backend {name!r} is not available: it needs {', '.join(info.requires)}; install it with: {info.install}")
        return info


class Registrar:
    """What a plugin's hook receives: adds are staged and kept only if the hook succeeds."""

    def __init__(self, registry: Registry, registrant: str):
        self._reg = registry
        self.registrant = registrant
        self._ops: dict[str, OpInfo] = {}
        self._kernels: dict[tuple[str, str], tuple[Callable, str]] = {}
        self._backends: dict[str, BackendInfo] = {}
        self._generators: dict[str, GeneratorInfo] = {}

    def _taken(self, table: dict, staged: dict, key: Any, what: str) -> None:
        if key in table or key in staged:
            other = (table.get(key) or staged.get(key))
            by = other[1] if isinstance(other, tuple) else other.registrant
            raise DuplicateNameError(
                f"{what} {key!r} registered by {self.registrant!r} is already registered by {by!r}")

    def add_op(self, cls: type, name: str | None = None) -> type:
        """Register the spec class ``cls`` under ``name`` (default ``cls.name``, snake_case)."""
        if not (isinstance(cls, type) and issubclass(cls, Op)):
            raise SpecTypeError(f"{self.registrant}: add_op takes an Op subclass, got {cls!r}")
        name = name or cls.name
        if not name or not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise RegistryError(f"{self.registrant}: op {cls.__name__} needs a snake_case name (class attribute 'name')")
        if name in RESERVED_NAMES:
            raise RegistryError(f"{self.registrant}: op {cls.__name__} cannot be named {name!r} (a reserved config word)")
        bad = [f for f in cls.config_fields() if f in ("type", "version")]
        if bad:
            raise RegistryError(f"{self.registrant}: op {cls.__name__} has a field named {bad[0]!r}, which configs use "
                                "for themselves; rename the field")
        if not cls.name:
            cls.name = name
        self._taken(self._reg.ops, self._ops, name, "op")
        self._ops[name] = OpInfo(name, cls.family, cls, self.registrant)
        return cls

    def add_kernel(self, name: str, backend: str, fn: Callable) -> None:
        """A backend's kernel for the op ``name``, or its stage kernel (``stage_kernel_name(kind)``):
        a callable, or ``"module:attr"`` imported when a pipeline is compiled for that backend
        (so registering a framework's kernels does not import the framework)."""
        if not isinstance(name, str) or not isinstance(backend, str):
            raise SpecTypeError(f"{self.registrant}: add_kernel takes an op (or stage) name and a backend name")
        if name.startswith("stage.") and name[len("stage."):] not in STAGE_KINDS:
            raise RegistryError(f"{self.registrant}: {name!r} is not a stage kernel; the kinds are {list(STAGE_KINDS)}")
        if not (callable(fn) or (isinstance(fn, str) and fn.count(":") == 1)):
            raise SpecTypeError(f"{self.registrant}: the kernel for {name!r} on {backend!r} is neither callable "
                                f"nor a 'module:attr' string: {fn!r}")
        self._taken(self._reg.kernels, self._kernels, (name, backend), "kernel")
        self._kernels[(name, backend)] = (fn, self.registrant)

    def add_backend(self, name: str, factory: Any, *, requires: tuple[str, ...] = (), install: str = "") -> None:
        """A backend: ``factory`` a class / callable, or ``"module:attr"`` imported on first compile."""
        self._taken(self._reg.backends, self._backends, name, "backend")
        self._backends[name] = BackendInfo(name, factory, tuple(requires), install or f"install {name}",
                                           self.registrant)

    def add_generator(self, name: str, factory: Any) -> None:
        """A generator for ``Synthetic(generator=name)``: ``factory(**options)`` returns the
        batched callable (``core/synthetic.py``); a class or callable, or ``"module:attr"``
        imported on first use."""
        if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
            raise RegistryError(f"{self.registrant}: a generator needs a snake_case name, got {name!r}")
        if not (callable(factory) or (isinstance(factory, str) and factory.count(":") == 1)):
            raise SpecTypeError(f"{self.registrant}: the factory of generator {name!r} is neither callable nor a "
                                f"'module:attr' string: {factory!r}")
        self._taken(self._reg.generators, self._generators, name, "generator")
        self._generators[name] = GeneratorInfo(name, factory, self.registrant)

    def commit(self) -> None:
        self._reg.generators.update(self._generators)
        self._reg.ops.update(self._ops)
        self._reg.kernels.update(self._kernels)
        self._reg.backends.update(self._backends)


# ---------------------------------------------------------------- the table

_lock = threading.RLock()
_registry: Registry | None = None
_loader: Callable[[Registry], None] | None = None


def set_loader(loader: Callable[[Registry], None] | None) -> None:
    """Install what fills the registry on first use (the plugin layer does, at import)."""
    global _loader, _registry
    with _lock:
        _loader, _registry = loader, None


def get_registry() -> Registry:
    """The registry, filled on first use by the installed loader."""
    global _registry
    reg = _registry
    if reg is not None:
        return reg
    with _lock:
        if _registry is None:
            reg = Registry()
            if _loader is not None:
                _loader(reg)
            _registry = reg
        return _registry


def reset_registry() -> None:
    """Forget the registry (tests; plugins installed since are found on next use)."""
    global _registry
    with _lock:
        _registry = None


def _in_process(thing: Any, add: Callable[[Registrar], None]) -> Any:
    """``add`` through a Registrar named after ``thing`` (its module and qualified name),
    committed at once: the in-process decorators' one path."""
    with _lock:
        r = Registrar(get_registry(), f"{thing.__module__}.{thing.__qualname__}")
        add(r)
        r.commit()
    return thing


def register(cls: type | None = None, *, name: str | None = None) -> Any:
    """Class decorator: register an op in-process under ``name`` (default ``cls.name``)."""

    def deco(c: type) -> type:
        return _in_process(c, lambda r: r.add_op(c, name))

    return deco(cls) if cls is not None else deco


def register_kernel(name: str, backend: str) -> Callable[[Callable], Callable]:
    """Decorator: a backend's kernel for a registered op (the family method's signature),
    or a stage kernel (``name = stage_kernel_name(kind)``)."""

    def deco(fn: Callable) -> Callable:
        return _in_process(fn, lambda r: r.add_kernel(name, backend, fn))

    return deco


def register_generator(factory: Any = None, *, name: str | None = None) -> Any:
    """Decorator: register a generator factory in-process (a ``Generator`` subclass, named
    by its ``name`` unless ``name`` is given, or a function ``(**options) -> generator``,
    named by ``name`` or its own name)."""

    def deco(f: Any) -> Any:
        n = name or getattr(f, "name", "") or getattr(f, "__name__", "")
        return _in_process(f, lambda r: r.add_generator(n, f))

    return deco(factory) if factory is not None else deco


def list_generators() -> list[GeneratorInfo]:
    """Every registered generator, by name."""
    return sorted(get_registry().generators.values(), key=lambda g: g.name)


def list_ops() -> list[OpInfo]:
    """Every registered op, by name."""
    return sorted(get_registry().ops.values(), key=lambda o: o.name)


def list_backends() -> list[BackendInfo]:
    """Every registered backend; ``.available`` says whether its framework is installed."""
    return sorted(get_registry().backends.values(), key=lambda b: b.name)


def plugin_errors() -> list[tuple[str, str]]:
    """(plugin name, message) for each plugin that failed to load or register."""
    return list(get_registry().errors)


# ------------------------------------------------------------------ compile


def load_backend(name: str, **options: Any) -> Any:
    info = get_registry().get_backend(name)
    factory = info.factory
    if isinstance(factory, str):
        mod, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(mod), attr)
    return factory(**options)


_RUN_OPTIONS = ("fuse", "epoch", "rank", "worker", "targets")


def compile_pipeline(pipeline: Any, backend: Any, **options: Any) -> Any:
    """``pipeline`` compiled for ``backend``: a registered name, ``"auto"``, or a backend
    object (``augspec.testing.check_backend`` compiles an unregistered one this way)."""
    if isinstance(backend, str) and backend == "auto":
        return AutoRun(pipeline, options)
    run_opts = {k: options.pop(k) for k in _RUN_OPTIONS if k in options}
    if isinstance(backend, str):
        b = load_backend(backend, **options)
    elif hasattr(backend, "make_run") and hasattr(backend, "name"):
        if options:
            raise SpecTypeError(f"compile: options {sorted(options)} go to the backend's constructor, "
                                "not with a backend object")
        b = backend
    else:
        raise SpecTypeError(f"backend must be a name (a string) or a Backend, got {backend!r}")
    reg = get_registry()
    from .plan import flatten

    for lf in flatten(pipeline.ops)[0]:
        if lf.op.family == "synthetic":
            lf.op.source()  # the generator it names exists and takes its options
        if reg.kernel(lf.op, b.name) is None:
            raise RegistryError(
                f"op {lf.op.name!r} has no kernel for the {b.name!r} backend (no generic kernel and none registered)")
    return b.make_run(pipeline, kernels=reg.kernel_table(pipeline.ops, b.name), **run_opts)


#: ``compile("auto")``: the backend of each array type's top-level module
AUTO_BACKENDS = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "keras": "tensorflow",
                 "jax": "jax", "jaxlib": "jax"}


class AutoRun:
    """``compile("auto")``: picks the backend from the type of the first images."""

    def __init__(self, pipeline: Any, options: dict[str, Any]):
        self.pipeline, self.options, self.run = pipeline, options, None

    def _resolve(self, images: Any) -> Any:
        if self.run is None:
            if isinstance(images, Mapping):  # a dict call: its images say
                images = images.get("image", images.get("images"))
            root = type(images).__module__.split(".")[0]
            name = AUTO_BACKENDS.get(root, "numpy" if isinstance(images, (list, tuple)) else None)
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
