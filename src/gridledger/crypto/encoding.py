"""Canonical encoding of everything that is signed, hashed or sent.

Deterministic CBOR (RFC 8949 §4.2.1, core deterministic encoding) over a small
data model: ``None``, ``bool``, integers in ``[-2**64, 2**64 - 1]``, ``bytes``,
``str``, lists (tuples encode as lists) and maps with text keys. Floats, tags,
undefined and non-text map keys are refused: money and energy are integers, and
a narrow model leaves no two encodings of one value.

With text keys only, RFC 8949's bytewise key order coincides with the older
length-first order (shorter UTF-8 first, then bytewise). :func:`to_value` builds
every map with its keys already in that order, so ``cbor2`` (C accelerated)
writes the canonical bytes in its plain mode, which always picks the shortest
forms of integers and lengths: its ``canonical`` mode would only sort the keys
again, at twice the cost. Decoding is checked by re-encoding the value in the
order it was read and checking each map's key order: any input that does not
re-encode to exactly the same bytes (non-shortest integers or lengths,
indefinite lengths, trailing bytes), or whose keys are unsorted or duplicated,
is rejected with :class:`EncodingError`. Property tests hold both sides to
``cbor2``'s ``canonical`` mode.

Frozen dataclasses registered with :func:`wire_type` encode as maps carrying
their type name under ``"_t"``; :func:`decode_as` rebuilds them and checks the
field types, so a message of one type can never be decoded as another.

Everything here may be fed bytes chosen by an attacker (a peer's frame, a
client's transaction), so every failure is an :class:`EncodingError` and the
work done before refusing is bounded:

- CBOR tags are refused *before* their content is decoded (no date, MIME,
  regex, bignum or shared-reference decoder of ``cbor2`` ever runs), and so are
  indefinite lengths, duplicate keys and nesting beyond :data:`MAX_DEPTH`;
- a map's ``"_t"`` must be text, on both sides, so that the type tag of any
  decoded value can be used as a dict key (a list or a map there once crashed
  a replica's dispatch with ``TypeError: unhashable type``);
- :func:`from_value` turns whatever a dataclass's ``__post_init__`` raises
  into an :class:`EncodingError` that keeps its reason.
"""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, Union

import cbor2

from gridledger.crypto.errors import EncodingError
from gridledger.errors import GridledgerError

DEFAULT_MAX_SIZE = 16 * 1024 * 1024
MAX_DEPTH = 64
_INT_MIN = -(2**64)
_INT_MAX = 2**64 - 1
TYPE_KEY = "_t"

Value = Any  # None | bool | int | bytes | str | list[Value] | dict[str, Value]

T = TypeVar("T")

_REGISTRY: dict[str, type[Any]] = {}
_NAMES: dict[type[Any], str] = {}


def wire_type(name: str) -> Callable[[type[T]], type[T]]:
    """Register a frozen dataclass under a unique wire name (e.g. ``"ledger.tx/1"``)."""

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} is not a dataclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise TypeError(f"wire name {name!r} already registered")
        _REGISTRY[name] = cls
        _NAMES[cls] = name
        return cls

    return register


def wire_name(cls: type[Any]) -> str:
    """The registered wire name of a dataclass."""
    try:
        return _NAMES[cls]
    except KeyError:
        raise EncodingError(f"{cls.__name__} is not a registered wire type") from None


_KEY_ORDERS: dict[str, tuple[int, bytes]] = {}  # of wire types' field names only


def _get_key_order(key: str) -> tuple[int, bytes]:
    """Where ``key`` goes in a canonical map: shorter UTF-8 first, then bytewise.

    Field names of wire types are looked up (filled by :func:`_field_names`);
    keys chosen by a peer are computed and never kept, so no input can fill
    the table.
    """
    order = _KEY_ORDERS.get(key)
    if order is None:
        raw = key.encode("utf-8", "surrogatepass")
        order = (len(raw), raw)
    return order


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    """The map keys of a wire type in canonical order, :data:`TYPE_KEY` among them."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        fields = [f.name for f in dataclasses.fields(cls)]
        if TYPE_KEY in fields:
            raise EncodingError(f"{cls.__name__} has a field named {TYPE_KEY!r}")
        names = tuple(sorted((TYPE_KEY, *fields), key=_get_key_order))
        for name in names:
            _KEY_ORDERS[name] = _get_key_order(name)
        _FIELD_NAMES[cls] = names
    return names


def to_value(obj: Any, _depth: int = 0) -> Value:
    """Convert a Python object (dataclasses included) to the encodable data model.

    Dispatches on the exact type first: this runs for every transaction a
    replica executes, several times, so the common cases take one dict lookup.
    """
    if _depth > MAX_DEPTH:
        raise EncodingError("value nested too deeply")
    t = type(obj)
    if t is bytes or t is str or t is bool or obj is None:
        return obj
    if t is int:
        if not _INT_MIN <= obj <= _INT_MAX:
            raise EncodingError("integer outside the 64-bit range; encode it as bytes")
        return obj
    name = _NAMES.get(t)
    if name is not None:
        fields: dict[str, Value] = {}
        for field_name in _field_names(t):
            if field_name is TYPE_KEY:
                fields[TYPE_KEY] = name
            else:
                fields[field_name] = to_value(getattr(obj, field_name), _depth + 1)
        return fields
    if isinstance(obj, (bool, bytes, str)):
        return obj
    if isinstance(obj, int):
        if not _INT_MIN <= obj <= _INT_MAX:
            raise EncodingError("integer outside the 64-bit range; encode it as bytes")
        return int(obj)
    if isinstance(obj, (list, tuple)):
        return [to_value(x, _depth + 1) for x in obj]
    if isinstance(obj, Mapping):
        out: dict[str, Value] = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise EncodingError("map keys must be text strings")
            out[k] = to_value(v, _depth + 1)
        if TYPE_KEY in out and type(out[TYPE_KEY]) is not str:
            raise EncodingError(f"the type tag {TYPE_KEY!r} must be text")
        return dict(sorted(out.items(), key=lambda item: _get_key_order(item[0])))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        raise EncodingError(f"{type(obj).__name__} is not a registered wire type")
    raise EncodingError(f"cannot encode values of type {type(obj).__name__}")


def encode(obj: Any) -> bytes:
    """The canonical bytes of ``obj`` (a data-model value or a registered dataclass)."""
    try:
        return cbor2.dumps(to_value(obj))  # maps come out of to_value in canonical order
    except EncodingError:
        raise
    except Exception as exc:  # cbor2 raises its own types on exotic input
        raise EncodingError(f"cannot encode: {exc}") from None


def _check_model(v: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError("value nested too deeply")
    t = type(v)
    # exact types first: ``cbor2`` returns these, and this walk runs on every frame
    if t is str or t is bytes or t is bool or v is None:
        return
    if t is int:
        if not _INT_MIN <= v <= _INT_MAX:
            raise EncodingError("integer outside the 64-bit range")
        return
    if t is list:
        for x in v:
            if type(x) is not bytes:
                _check_model(x, depth + 1)
        return
    if t is dict:
        _check_map(v, depth)
        return
    if isinstance(v, (bool, bytes, str)):
        return
    if isinstance(v, int):
        if not _INT_MIN <= v <= _INT_MAX:
            raise EncodingError("integer outside the 64-bit range")
        return
    if isinstance(v, list):
        for x in v:
            _check_model(x, depth + 1)
        return
    if isinstance(v, dict):
        _check_map(v, depth)
        return
    raise EncodingError(f"type {type(v).__name__} is not allowed in canonical data")


def _check_map(v: dict[Any, Any], depth: int) -> None:
    previous: tuple[int, bytes] = (-1, b"")
    for k, x in v.items():
        if type(k) is not str and not isinstance(k, str):
            raise EncodingError("map keys must be text strings")
        order = _get_key_order(k)
        if order <= previous:  # equal keys are refused by cbor2 already
            raise EncodingError("map keys are not in canonical order")
        previous = order
        tx = type(x)
        if tx is not bytes and tx is not str:
            _check_model(x, depth + 1)
    if TYPE_KEY in v and type(v[TYPE_KEY]) is not str:
        raise EncodingError(f"the type tag {TYPE_KEY!r} must be text")


def get_type_tag(value: Value) -> str | None:
    """The wire name a decoded value carries, or ``None`` if it is not a tagged map.

    Always a ``str`` or ``None`` (never a list or a map), so callers may use it
    as a dict key even on a value that did not come from :func:`decode`.
    """
    if type(value) is not dict:
        return None
    tag = value.get(TYPE_KEY)
    return tag if type(tag) is str else None


class _TagRefused(Exception):
    """Raised inside ``cbor2`` for any tag; never leaves :func:`decode`."""


def _refuse_tag(*_args: object) -> None:
    raise _TagRefused


class _NoSemanticTags(Mapping[int, Callable[..., object]]):
    """A ``semantic_decoders`` table that claims every tag and refuses it.

    ``cbor2`` asks this table before running its own decoder for a tag, so the
    tag's content is never decoded; unknown tags reach ``tag_hook`` (also a refusal).
    """

    def __getitem__(self, tag: int) -> Callable[..., object]:
        return _refuse_tag

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_NO_TAGS = _NoSemanticTags()


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Value:
    """Decode canonical bytes to a data-model value, refusing anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodingError("input must be bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise EncodingError(f"input of {len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise EncodingError("empty input")
    try:
        value = cbor2.loads(
            data,
            semantic_decoders=_NO_TAGS,
            tag_hook=_refuse_tag,
            max_depth=MAX_DEPTH + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
    except Exception as exc:  # truncated, malformed, tags, unknown simple values, ...
        raise EncodingError(f"malformed CBOR: {type(exc).__name__}") from None
    _check_model(value)  # key order included
    if cbor2.dumps(value) != data:
        raise EncodingError("not the canonical encoding of its value")
    return value


_Coercer = Callable[[Value, str], Any]
_COERCERS: dict[Any, _Coercer] = {}  # annotation (unions: ordered arguments) -> checker


def _get_coercer(tp: Any) -> _Coercer:
    """The checker of annotation ``tp``, built once: the annotation is read at build
    time, so decoding a message runs one closure per field instead of re-reading
    ``typing`` metadata for every value (this runs for every frame and transaction)."""
    origin = typing.get_origin(tp)
    # ``A | B == B | A``, but alternatives are tried in the order written: key unions
    # by their ordered arguments so that two such annotations never share a checker
    key = (origin, typing.get_args(tp)) if origin is Union or origin is types.UnionType else tp
    try:
        return _COERCERS[key]
    except KeyError:
        coercer = _build_coercer(tp)
        _COERCERS[key] = coercer
        return coercer
    except TypeError:  # an unhashable annotation: build it each time
        return _build_coercer(tp)


def _build_coercer(tp: Any) -> _Coercer:
    origin = typing.get_origin(tp)
    if tp is Any:
        return _identity
    if origin is Union or origin is types.UnionType:
        return _union_coercer(typing.get_args(tp))
    if origin is typing.Literal:
        return _literal_coercer(typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return _variadic_tuple_coercer(_get_coercer(args[0]))
        return _fixed_tuple_coercer(tuple(_get_coercer(a) for a in args))
    if origin is list:
        (arg,) = typing.get_args(tp)
        return _list_coercer(_get_coercer(arg))
    if origin is dict or origin is Mapping:
        _kt, vt = typing.get_args(tp)
        return _map_coercer(_get_coercer(vt))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls = tp

        def dataclass_coercer(v: Value, where: str) -> Any:
            return from_value(cls, v)

        return dataclass_coercer
    if tp is bool:
        return _bool_coercer
    if tp is int:
        return _int_coercer
    if isinstance(tp, type) and issubclass(tp, int) and tp is not bool:
        return _int_subclass_coercer(tp)
    if tp is bytes:
        return _bytes_coercer
    if tp is str:
        return _str_coercer
    if isinstance(tp, type) and issubclass(tp, str):
        return _str_subclass_coercer(tp)
    if tp is type(None):
        return _none_coercer
    # NewType wrappers: check against the supertype.
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:
        return _get_coercer(supertype)
    return _unsupported_coercer(tp)


def _identity(v: Value, where: str) -> Any:
    return v


def _bool_coercer(v: Value, where: str) -> Any:
    if type(v) is not bool and not isinstance(v, bool):
        raise EncodingError(f"{where}: expected bool")
    return v


def _int_coercer(v: Value, where: str) -> Any:
    if type(v) is not int and (not isinstance(v, int) or isinstance(v, bool)):
        raise EncodingError(f"{where}: expected int")
    return v


def _bytes_coercer(v: Value, where: str) -> Any:
    if type(v) is not bytes and not isinstance(v, bytes):
        raise EncodingError(f"{where}: expected bytes")
    return v


def _str_coercer(v: Value, where: str) -> Any:
    if type(v) is not str and not isinstance(v, str):
        raise EncodingError(f"{where}: expected text")
    return v


def _none_coercer(v: Value, where: str) -> Any:
    if v is not None:
        raise EncodingError(f"{where}: expected null")
    return None


def _int_subclass_coercer(tp: type[int]) -> _Coercer:
    def coerce(v: Value, where: str) -> Any:
        if not isinstance(v, int) or isinstance(v, bool):
            raise EncodingError(f"{where}: expected int")
        return tp(v)

    return coerce


def _str_subclass_coercer(tp: type[str]) -> _Coercer:
    def coerce(v: Value, where: str) -> Any:
        if not isinstance(v, str):
            raise EncodingError(f"{where}: expected text")
        return tp(v)

    return coerce


def _unsupported_coercer(tp: Any) -> _Coercer:
    def coerce(v: Value, where: str) -> Any:
        raise EncodingError(f"{where}: unsupported annotation {tp!r}")

    return coerce


def _union_coercer(args: tuple[Any, ...]) -> _Coercer:
    optional = type(None) in args
    alternatives = tuple(_get_coercer(a) for a in args if a is not type(None))

    def coerce(v: Value, where: str) -> Any:
        if v is None and optional:
            return None
        errors = []
        for alternative in alternatives:
            try:
                return alternative(v, where)
            except EncodingError as exc:
                errors.append(exc.reason)
        raise EncodingError(f"{where}: no alternative matches ({'; '.join(errors)})")

    return coerce


def _literal_coercer(allowed: tuple[Any, ...]) -> _Coercer:
    def coerce(v: Value, where: str) -> Any:
        if not any(type(v) is type(a) and v == a for a in allowed):
            raise EncodingError(f"{where}: {_brief(v)} is not one of {allowed}")
        return v

    return coerce


def _variadic_tuple_coercer(item: _Coercer) -> _Coercer:
    def coerce(v: Value, where: str) -> Any:
        if not isinstance(v, list):
            raise EncodingError(f"{where}: expected a list")
        inner = f"{where}[]"
        return tuple([item(x, inner) for x in v])

    return coerce


def _fixed_tuple_coercer(items: tuple[_Coercer, ...]) -> _Coercer:
    def coerce(v: Value, where: str) -> Any:
        if not isinstance(v, list):
            raise EncodingError(f"{where}: expected a list")
        if len(items) != len(v):
            raise EncodingError(f"{where}: expected {len(items)} items")
        return tuple([c(x, f"{where}[{i}]") for i, (c, x) in enumerate(zip(items, v, strict=True))])

    return coerce


def _list_coercer(item: _Coercer) -> _Coercer:
    def coerce(v: Value, where: str) -> Any:
        if not isinstance(v, list):
            raise EncodingError(f"{where}: expected a list")
        inner = f"{where}[]"
        return [item(x, inner) for x in v]

    return coerce


def _map_coercer(value: _Coercer) -> _Coercer:
    def coerce(v: Value, where: str) -> Any:
        if not isinstance(v, dict):
            raise EncodingError(f"{where}: expected a map")
        return {k: value(x, f"{where}.{k[:32]}") for k, x in v.items()}

    return coerce


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _brief(v: Value) -> str:
    """A short description of an untrusted value for an error message (never its full repr)."""
    if v is None or type(v) in (bool, int):
        return repr(v) if type(v) is not int or abs(v) < 10**20 else "a large int"
    if type(v) in (str, bytes):
        return repr(v[:32]) + ("..." if len(v) > 32 else "")
    return f"a {type(v).__name__}"


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How to rebuild one registered dataclass: its wire name, fields and their checkers."""

    name: str
    fields: tuple[str, ...]
    coercers: tuple[_Coercer, ...]
    wheres: tuple[str, ...]
    keys: frozenset[str]  # the fields and TYPE_KEY: the keys of its map, exactly


_PLANS: dict[type[Any], _Plan] = {}


def _get_plan(cls: type[Any]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        name = wire_name(cls)
        hints = _HINTS.get(cls)
        if hints is None:
            hints = typing.get_type_hints(cls)
            _HINTS[cls] = hints
        fields = tuple(f.name for f in dataclasses.fields(cls))
        _field_names(cls)  # caches the key orders of its fields for decode's order check
        plan = _Plan(
            name,
            fields,
            tuple(_get_coercer(hints[f]) for f in fields),
            tuple(f"{name}.{f}" for f in fields),
            frozenset((*fields, TYPE_KEY)),
        )
        _PLANS[cls] = plan
    return plan


def from_value(cls: type[T], value: Value) -> T:
    """Rebuild a registered dataclass from a decoded map, checking every field's type.

    Any failure, including a ``__post_init__`` check of ``cls`` or of a nested
    class that raises something else, is an :class:`EncodingError`.
    """
    if type(value) is not dict:
        raise EncodingError(f"{cls.__name__}: expected a map")
    plan = _get_plan(cls)
    name = plan.name
    tag = value.get(TYPE_KEY)
    if tag != name:
        raise EncodingError(f"expected a {name}, got {_brief(tag)}")
    fields = plan.fields
    if value.keys() != plan.keys:
        expected = set(plan.keys)
        extra = [k[:32] for k in itertools.islice((k for k in value if k not in expected), 8)]
        missing = sorted(k for k in expected if k not in value)
        raise EncodingError(f"{name}: unexpected fields {extra}, missing {missing}")
    try:
        kwargs = {
            f: c(value[f], w) for f, c, w in zip(fields, plan.coercers, plan.wheres, strict=True)
        }
        return cls(**kwargs)
    except EncodingError:
        raise
    except GridledgerError as exc:  # __post_init__ validation with a typed error
        raise EncodingError(f"{name}: {exc.reason[:200]}") from None
    except Exception as exc:  # __post_init__ validation (ValueError, TypeError, ...)
        raise EncodingError(f"{name}: {type(exc).__name__}: {str(exc)[:200]}") from None


def decode_as(cls: type[T], data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> T:
    """Decode canonical bytes into the registered dataclass ``cls``."""
    return from_value(cls, decode(data, max_size=max_size))
