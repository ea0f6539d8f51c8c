"""Strict YAML -> frozen dataclass loading, with every error reported at once and located.

A config section is a frozen dataclass. Its fields' type hints say what a value may be; field
metadata (via `setting()`) adds a one-line doc and an optional check. The loader walks the YAML node
tree from `yaml.compose` (which keeps line numbers), builds the dataclasses, and collects every problem
as "FILE:LINE: key.path: what was wrong (what was expected)" instead of stopping at the first.

Supported field types: bool, int, float, str, Duration, ByteSize, Secret, ipaddress networks and
addresses, Literal[...], Optional[T], tuple[T, ...], and nested dataclasses.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union, get_args, get_origin

import yaml

__all__ = [
    "ByteSize",
    "ConfigError",
    "Duration",
    "Problem",
    "Secret",
    "load_node",
    "setting",
]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based; 0 when there is no line (e.g. a missing file)
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in a configuration file; str() lists them all, one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Duration(float):
    """Seconds, written as "250ms", "30s", "5m", "1h", "7d" or a bare number of seconds."""

    _UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
    _RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")

    @classmethod
    def parse(cls, text: str) -> "Duration":
        m = cls._RE.match(text)
        if not m:
            raise ValueError(f"invalid duration {text!r} (expected a number with a unit: ms, s, m, h, d, w)")
        return cls(float(m.group(1)) * cls._UNITS[m.group(2) or "s"])


class ByteSize(int):
    """Bytes, written as "512KiB", "4MiB", "1GiB", "1MB" or a bare number of bytes."""

    _UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
    _RE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")

    @classmethod
    def parse(cls, text: str) -> "ByteSize":
        m = cls._RE.match(text)
        unit = m.group(2).lower() if m else None
        if not m or unit not in cls._UNITS:
            raise ValueError(f"invalid size {text!r} (expected a number with a unit: KiB, MiB, GiB, KB, MB, GB)")
        return cls(int(m.group(1)) * cls._UNITS[unit])


class Secret:
    """A secret value (SNMP community, v3 key). Written in YAML as a string, or as {env: NAME} or
    {file: PATH}. The value is only reachable through .reveal(); repr and str never show it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "inline"):
        self._value = value
        self.source = source  # "inline", "env:NAME" or "file:PATH": safe to show

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(<{self.source}>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def setting(default: Any = dataclasses.MISSING, *, doc: str = "", check: Callable[[Any], str | None] | None = None,
            default_factory: Any = dataclasses.MISSING):
    """A dataclass field with a doc line and an optional check returning an error message or None."""
    md = {"doc": doc, "check": check}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=md)
    return field(default=default, metadata=md)


# ---------------------------------------------------------------------------------------------------
# Loader


class _Ctx:
    def __init__(self, file: str, base_dir: str, env: typing.Mapping[str, str]):
        self.file = file
        self.base_dir = base_dir
        self.env = env
        self.problems: list[Problem] = []

    def error(self, node: yaml.Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        self.problems.append(Problem(self.file, line, path, message))


_INVALID = object()  # marks a value that failed; the problem is already recorded

_TAGS = {
    "tag:yaml.org,2002:str": "a string",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:seq": "a list",
    "tag:yaml.org,2002:map": "a mapping",
}


def _what(node: yaml.Node) -> str:
    return _TAGS.get(node.tag, node.tag)


def _scalar(ctx: _Ctx, node: yaml.Node, path: str, want: str):
    if not isinstance(node, yaml.ScalarNode):
        ctx.error(node, path, f"expected {want}, got {_what(node)}")
        return _INVALID
    return _construct(node)


def _construct(node: yaml.ScalarNode):
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _hint_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is bool:
        return "a boolean"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is Duration:
        return "a duration such as 30s or 5m"
    if tp is ByteSize:
        return "a size such as 4MiB"
    if tp is Secret:
        return "a string, {env: NAME} or {file: PATH}"
    if tp in (ipaddress.IPv4Network, ipaddress.IPv6Network) or tp == Union[ipaddress.IPv4Network, ipaddress.IPv6Network]:
        return "a CIDR network such as 192.168.1.0/24"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if origin is tuple:
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _load(ctx: _Ctx, node: yaml.Node, tp: Any, path: str):
    origin = get_origin(tp)
    args = get_args(tp)

    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            if len(non_none) < len(args):
                return None
        if len(non_none) == 1:
            return _load(ctx, node, non_none[0], path)
        if set(non_none) <= {ipaddress.IPv4Network, ipaddress.IPv6Network}:
            return _net(ctx, node, path)
        if set(non_none) <= {ipaddress.IPv4Address, ipaddress.IPv6Address}:
            return _addr(ctx, node, path)
        raise TypeError(f"unsupported union in config schema at {path}: {tp}")

    if dataclasses.is_dataclass(tp):
        return _load_dataclass(ctx, node, tp, path)

    if origin is tuple:
        item_tp = args[0]
        if not isinstance(node, yaml.SequenceNode):
            ctx.error(node, path, f"expected a list, got {_what(node)}")
            return _INVALID
        items = [_load(ctx, child, item_tp, f"{path}[{i}]") for i, child in enumerate(node.value)]
        return _INVALID if any(x is _INVALID for x in items) else tuple(items)

    if origin is dict:
        key_tp, val_tp = args
        if not isinstance(node, yaml.MappingNode):
            ctx.error(node, path, f"expected a mapping, got {_what(node)}")
            return _INVALID
        out = {}
        for knode, vnode in node.value:
            k = _load(ctx, knode, key_tp, path)
            v = _load(ctx, vnode, val_tp, f"{path}.{knode.value}")
            if k is not _INVALID and v is not _INVALID:
                out[k] = v
        return types.MappingProxyType(out)

    if tp is Secret:
        return _secret(ctx, node, path)

    if origin is Literal:
        value = _scalar(ctx, node, path, _hint_name(tp))
        if value is _INVALID:
            return value
        if value not in args and not isinstance(value, bool) and str(value) in args:
            value = str(value)  # `version: 3` is an int in YAML; the choices are strings
        if value not in args:
            ctx.error(node, path, f"unknown value {value!r} (expected one of {', '.join(str(a) for a in args)})")
            return _INVALID
        return value

    if tp in (ipaddress.IPv4Network, ipaddress.IPv6Network):
        return _net(ctx, node, path)
    if tp in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        return _addr(ctx, node, path)

    value = _scalar(ctx, node, path, _hint_name(tp))
    if value is _INVALID:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            ctx.error(node, path, f"expected a boolean (true or false), got {value!r}")
            return _INVALID
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.error(node, path, f"expected an integer, got {value!r}")
            return _INVALID
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.error(node, path, f"expected a number, got {value!r}")
            return _INVALID
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            ctx.error(node, path, f"expected a string, got {value!r}")
            return _INVALID
        return value
    if tp in (Duration, ByteSize):
        if isinstance(value, bool):
            ctx.error(node, path, f"expected {_hint_name(tp)}, got {value!r}")
            return _INVALID
        if isinstance(value, (int, float)) and value >= 0:
            return tp(value)
        try:
            return tp.parse(str(value))
        except ValueError as exc:
            ctx.error(node, path, str(exc))
            return _INVALID
    raise TypeError(f"unsupported type in config schema at {path}: {tp}")


def _net(ctx: _Ctx, node: yaml.Node, path: str):
    value = _scalar(ctx, node, path, "a CIDR network such as 192.168.1.0/24")
    if value is _INVALID:
        return value
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        ctx.error(node, path, f"invalid network {value!r} (expected a CIDR network such as 192.168.1.0/24)")
        return _INVALID


def _addr(ctx: _Ctx, node: yaml.Node, path: str):
    value = _scalar(ctx, node, path, "an IP address")
    if value is _INVALID:
        return value
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        ctx.error(node, path, f"invalid IP address {value!r}")
        return _INVALID


def _secret(ctx: _Ctx, node: yaml.Node, path: str):
    if isinstance(node, yaml.ScalarNode):
        value = _construct(node)
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            ctx.error(node, path, "expected a string, {env: NAME} or {file: PATH}")
            return _INVALID
        return Secret(str(value))
    if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
        ctx.error(node, path, "expected a string, {env: NAME} or {file: PATH}")
        return _INVALID
    knode, vnode = node.value[0]
    kind, ref = knode.value, vnode.value if isinstance(vnode, yaml.ScalarNode) else None
    if kind not in ("env", "file") or not ref:
        ctx.error(node, path, "expected a string, {env: NAME} or {file: PATH}")
        return _INVALID
    if kind == "env":
        if ref not in ctx.env:
            ctx.error(vnode, path, f"environment variable {ref} is not set")
            return _INVALID
        return Secret(ctx.env[ref], f"env:{ref}")
    fpath = ref if os.path.isabs(ref) else os.path.join(ctx.base_dir, ref)
    try:
        with open(fpath, encoding="utf-8") as fh:
            return Secret(fh.read().rstrip("\r\n"), f"file:{fpath}")
    except OSError as exc:
        ctx.error(vnode, path, f"cannot read secret file {fpath}: {exc.strerror}")
        return _INVALID


def _load_dataclass(ctx: _Ctx, node: yaml.Node, cls: type, path: str):
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        node = yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark, node.end_mark)
    if not isinstance(node, yaml.MappingNode):
        ctx.error(node, path or "(top level)", f"expected a mapping, got {_what(node)}")
        return _INVALID
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")}
    seen: dict[str, yaml.Node] = {}
    values: dict[str, Any] = {}
    bad = False
    for knode, vnode in node.value:
        key = knode.value if isinstance(knode, yaml.ScalarNode) else None
        kpath = f"{path}.{key}" if path else str(key)
        if key is None or key not in fields:
            known = ", ".join(sorted(fields))
            ctx.error(knode, kpath, f"unknown key (expected one of: {known})")
            bad = True
            continue
        if key in seen:
            ctx.error(knode, kpath, f"duplicate key (first given on line {seen[key].start_mark.line + 1})")
            bad = True
            continue
        seen[key] = knode
        value = _load(ctx, vnode, hints[key], kpath)
        if value is _INVALID:
            bad = True
            continue
        check = fields[key].metadata.get("check")
        if check is not None and value is not None:
            msg = check(value)
            if msg:
                ctx.error(vnode, kpath, msg)
                bad = True
                continue
        values[key] = value
    for name, f in fields.items():
        if name not in values and name not in seen and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
            ctx.error(node, f"{path}.{name}" if path else name, "required key is missing")
            bad = True
    if bad:
        return _INVALID
    try:
        return cls(**values)
    except ValueError as exc:  # cross-field checks in __post_init__
        ctx.error(node, path or "(top level)", str(exc))
        return _INVALID


def load_node(node: yaml.Node | None, cls: type, *, file: str, base_dir: str = ".",
              env: typing.Mapping[str, str] | None = None):
    """Build `cls` from a composed YAML node, raising ConfigError with every problem found."""
    ctx = _Ctx(file, base_dir, os.environ if env is None else env)
    if node is None:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [], None, None)
    value = _load_dataclass(ctx, node, cls, "")
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return value
