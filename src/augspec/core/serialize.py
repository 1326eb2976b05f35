"""to_dict / from_dict, JSON and YAML for specs and pipelines, with no code execution.

Format (``FORMAT_VERSION`` 1)::

    {"version": 1, "type": "pipeline", "num_classes": 10, "seed": 0,
     "ops": [{"type": "affine", "rotate": [-15.0, 15.0], ...}, ...]}

``type`` is a registry name (never an import path); only the top level carries
``version``. Tuples become lists; fitted arrays become lists when small and
``{"ndarray": {"dtype", "shape", "base64"}}`` (raw little-endian bytes) when
large. Loading resolves names only through the registry, YAML goes through
``yaml.safe_load`` (Python tags are refused), and nothing is unpickled.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import numpy as np

from .errors import ConfigError, ConfigTypeError, SpecError, SpecTypeError
from .spec import Op

FORMAT_VERSION = 1
_SMALL = 64
#: bounds on a config's tree, checked before anything is built: YAML aliases can
#: make a small document an exponentially large tree, and deep nesting a RecursionError
MAX_DEPTH = 100
MAX_NODES = 200_000


def _encode(v: Any) -> Any:
    if isinstance(v, Op):
        return _op_dict(v)
    if isinstance(v, np.ndarray):
        if v.size <= _SMALL:
            return v.tolist()
        a = np.ascontiguousarray(v.astype(v.dtype.newbyteorder("<")))
        return {"ndarray": {"dtype": str(v.dtype), "shape": list(v.shape),
                            "base64": base64.b64encode(a.tobytes()).decode("ascii")}}
    if isinstance(v, (tuple, list)):
        return [_encode(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def _op_dict(op: Op) -> dict[str, Any]:
    from .pipeline import Pipeline

    if isinstance(op, Pipeline):
        return {"type": "pipeline", "ops": [_op_dict(o) for o in op.ops], "num_classes": op.num_classes,
                "seed": op.seed}
    out: dict[str, Any] = {"type": op.name}
    for f in dataclasses.fields(op):  # type: ignore[arg-type]
        if f.init:
            out[f.name] = _encode(getattr(op, f.name))
    return out


def to_dict(op: Op) -> dict[str, Any]:
    """The spec or pipeline as plain JSON-compatible data, with the format version."""
    return {"version": FORMAT_VERSION, **_op_dict(op)}


def _decode(v: Any, where: str) -> Any:
    if isinstance(v, dict):
        if "type" in v:
            return _build(v, where)
        if set(v) == {"ndarray"} and isinstance(v["ndarray"], dict):
            spec = v["ndarray"]
            try:
                dt = np.dtype(spec["dtype"])
                if dt.kind not in "fiu":
                    raise ValueError(dt)
                raw = base64.b64decode(spec["base64"], validate=True)
                return np.frombuffer(raw, dtype=dt.newbyteorder("<")).reshape(spec["shape"]).astype(dt)
            except Exception as e:
                raise ConfigError(f"{where}: a malformed ndarray ({e})") from None
        raise ConfigError(f"{where}: a mapping without 'type' is not a value augspec reads: {sorted(map(str, v))[:5]}")
    if isinstance(v, list):
        return tuple(_decode(x, f"{where}[{i}]") for i, x in enumerate(v))
    if isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**63:
        raise ConfigError(f"{where}: the integer {str(v)[:20]}... ({len(str(abs(v)))} digits) is out of range")
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ConfigTypeError(f"{where}: a value of type {type(v).__name__} is not allowed")


def _build(d: dict[str, Any], where: str) -> Op:
    from .pipeline import Pipeline
    from .registry import get_registry

    name = d.get("type")
    if not isinstance(name, str):
        raise ConfigTypeError(f"{where}: 'type' must be an op name (a string), got {name!r}")
    if name == "pipeline":
        allowed: tuple[str, ...] = ("type", "ops", "num_classes", "seed")
        cls: Any = Pipeline
    else:
        reg = get_registry()
        if name not in reg.ops:
            raise ConfigError(f"{where}: unknown op {name!r}; known ops: {', '.join(sorted(reg.ops))}")
        cls = reg.ops[name].cls
        allowed = ("type", *cls.config_fields())
    unknown = [k for k in d if k not in allowed and k != "version"]
    if unknown:
        raise ConfigError(f"{where}: {name} has no field {unknown[0]!r}; its fields: {', '.join(allowed[1:])}")
    kwargs = {k: _decode(v, f"{where}.{k}") for k, v in d.items() if k not in ("type", "version")}
    if name == "pipeline" and "ops" in kwargs and not isinstance(kwargs["ops"], tuple):
        raise ConfigTypeError(f"{where}.ops: must be a list of ops")
    try:
        return cls(**kwargs)
    except SpecTypeError as e:
        raise ConfigTypeError(f"{where}: {e}") from None
    except SpecError as e:
        raise ConfigError(f"{where}: {e}") from None


def _check_size(d: Any) -> None:
    """Refuse trees deeper than MAX_DEPTH or with more than MAX_NODES values (iterative walk)."""
    stack, count = [(d, 0)], 0
    while stack:
        v, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(f"config: more than {MAX_NODES} values (a YAML alias bomb?); refused")
        if depth > MAX_DEPTH:
            raise ConfigError(f"config: nested deeper than {MAX_DEPTH} levels; refused")
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend((x, depth + 1) for x in v)


def from_dict(d: Any) -> Op:
    """Build the spec or pipeline a dict describes (never imports or executes anything)."""
    if not isinstance(d, dict):
        raise ConfigTypeError(f"a config must be a mapping, got {type(d).__name__}")
    _check_size(d)
    if "version" not in d:
        raise ConfigError("config: missing 'version' (this augspec reads version 1)")
    if d["version"] != FORMAT_VERSION or isinstance(d["version"], bool):
        raise ConfigError(f"config: version {d['version']!r} is not one this augspec reads (1)")
    return _build(d, "config")


def to_json(op: Op, **kw: Any) -> str:
    return json.dumps(to_dict(op), **kw)


def from_json(s: str | bytes) -> Op:
    try:
        d = json.loads(s)
    except RecursionError:
        raise ConfigError("config: JSON nested too deeply; refused") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config: not valid JSON ({e})") from None
    return from_dict(d)


def to_yaml(op: Op) -> str:
    import yaml

    return yaml.safe_dump(to_dict(op), sort_keys=False)


def from_yaml(s: str | bytes) -> Op:
    import yaml

    if not isinstance(s, (str, bytes)):
        raise ConfigTypeError(f"config: YAML must be a str or bytes, got {type(s).__name__}")
    try:
        d = yaml.safe_load(s)
    except yaml.YAMLError as e:
        raise ConfigError(f"config: YAML refused ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError("config: YAML nested too deeply; refused") from None
    return from_dict(d)
