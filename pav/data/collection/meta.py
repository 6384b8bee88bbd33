"""collection.json: parsing and checking every key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .checks import _name_problem
from .format import _META_KEYS, CROSS_DIR, FORMAT, KINDS, READ_VERSIONS, AppearanceSpec, CollectionMeta
from .problems import _Problems


@dataclass
class _MetaDraft:
    """collection.json as far as it is valid; None where a field is not."""

    subject: str | None = None
    head_model: str | None = None
    n_shape: int | None = None
    n_expr: int | None = None
    image_size: tuple[int, int] | None = None
    appearances: list[AppearanceSpec] = field(default_factory=list)
    cross: list[tuple[str, str]] = field(default_factory=list)
    uv_layout: str | None = None
    landmark_embedding: str | None = None
    version: int = READ_VERSIONS[-1]

    def complete(self) -> CollectionMeta:
        assert self.subject is not None and self.head_model is not None
        assert self.n_shape is not None and self.n_expr is not None and self.image_size is not None
        return CollectionMeta(self.subject, self.head_model, self.n_shape, self.n_expr,
                              self.image_size, self.appearances, self.cross, self.uv_layout,
                              self.landmark_embedding, self.version)


def _parse_meta(raw: object, where: str, p: _Problems) -> _MetaDraft | None:
    """None when `raw` is not a collection of a version this reader reads (nothing else can be checked)."""
    if not isinstance(raw, dict):
        p.add(where, f"must be a JSON object, got {type(raw).__name__}")
        return None
    if raw.get("format") != FORMAT:
        p.add(where, f"field 'format' must be {FORMAT!r}, got {raw.get('format')!r}")
        return None
    version = raw.get("version")
    if type(version) is not int or version not in READ_VERSIONS:
        p.add(where, f"field 'version' must be one of {list(READ_VERSIONS)}, got {version!r} (a newer pav "
                     "wrote it, or it is not a pav collection)")
        return None
    for key in sorted(set(raw) - set(_META_KEYS)):
        p.add(where, f"unknown field '{key}'")
    draft = _MetaDraft(
        subject=_get_str(raw, "subject", where, p),
        head_model=_get_head_model(raw, where, p),
        n_shape=_get_int(raw, "n_shape", where, p),
        n_expr=_get_int(raw, "n_expr", where, p),
        image_size=_get_image_size(raw, where, p),
        appearances=_get_appearances(raw, where, p),
    )
    draft.version = version
    draft.cross = _get_cross(raw, [a.name for a in draft.appearances], where, p)
    if raw.get("uv_layout") is not None:
        draft.uv_layout = _get_str(raw, "uv_layout", where, p)
    if raw.get("landmark_embedding") is not None:
        if version < 2:
            p.add(where, "field 'landmark_embedding' needs version 2")
        draft.landmark_embedding = _get_str(raw, "landmark_embedding", where, p)
    return draft


def _get_str(raw: dict[str, Any], key: str, where: str, p: _Problems) -> str | None:
    if key not in raw:
        p.add(where, f"missing field '{key}'")
        return None
    value = raw[key]
    if not isinstance(value, str) or not value:
        p.add(where, f"field '{key}' must be a non-empty string, got {value!r}")
        return None
    return value


def _get_head_model(raw: dict[str, Any], where: str, p: _Problems) -> str | None:
    value = _get_str(raw, "head_model", where, p)
    if value is not None and value.startswith("procedural:"):
        seed = value[len("procedural:"):]
        if not seed.isdigit():
            p.add(where, f"field 'head_model' must be a path or 'procedural:<integer seed>', got {value!r}")
            return None
    return value


def _get_int(raw: dict[str, Any], key: str, where: str, p: _Problems) -> int | None:
    if key not in raw:
        p.add(where, f"missing field '{key}'")
        return None
    value = raw[key]
    if type(value) is not int or value < 1:
        p.add(where, f"field '{key}' must be a positive integer, got {value!r}")
        return None
    return value


def _get_image_size(raw: dict[str, Any], where: str, p: _Problems) -> tuple[int, int] | None:
    if "image_size" not in raw:
        p.add(where, "missing field 'image_size'")
        return None
    value = raw["image_size"]
    if not isinstance(value, list) or len(value) != 2 or not all(type(v) is int and v > 0 for v in value):
        p.add(where, f"field 'image_size' must be [H, W] with positive integers, got {value!r}")
        return None
    return (value[0], value[1])


def _get_appearances(raw: dict[str, Any], where: str, p: _Problems) -> list[AppearanceSpec]:
    value = raw.get("appearances")
    if not isinstance(value, list) or not value:
        p.add(where, f"field 'appearances' must be a non-empty list, got {value!r}")
        return []
    specs: list[AppearanceSpec] = []
    for i, entry in enumerate(value):
        spec = _get_appearance(entry, f"appearances[{i}]", where, p)
        if spec is None:
            continue
        if spec.name in [s.name for s in specs]:
            p.add(where, f"field 'appearances[{i}].name': duplicate name {spec.name!r}")
            continue
        specs.append(spec)
    return specs


def _get_appearance(entry: object, key: str, where: str, p: _Problems) -> AppearanceSpec | None:
    if not isinstance(entry, dict) or set(entry) != {"name", "kind"}:
        p.add(where, f"field '{key}' must be an object with exactly 'name' and 'kind', got {entry!r}")
        return None
    name, kind = entry["name"], entry["kind"]
    ok = True
    problem = _name_problem(name)
    if problem is None and name == CROSS_DIR:
        problem = f"{name!r} is reserved"
    if problem is not None:
        p.add(where, f"field '{key}.name' {problem}")
        ok = False
    if kind not in KINDS:
        p.add(where, f"field '{key}.kind' must be one of {list(KINDS)}, got {kind!r}")
        ok = False
    return AppearanceSpec(name, kind) if ok else None


def _get_cross(raw: dict[str, Any], names: list[str], where: str, p: _Problems) -> list[tuple[str, str]]:
    value = raw.get("cross", [])
    if not isinstance(value, list):
        p.add(where, f"field 'cross' must be a list, got {value!r}")
        return []
    pairs: list[tuple[str, str]] = []
    for i, entry in enumerate(value):
        key = f"cross[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"appearance", "drive"}:
            p.add(where, f"field '{key}' must be an object with exactly 'appearance' and 'drive', "
                         f"got {entry!r}")
            continue
        pair = (entry["appearance"], entry["drive"])
        unknown = [k for k in ("appearance", "drive") if entry[k] not in names]
        for k in unknown:
            p.add(where, f"field '{key}.{k}' is not a listed appearance: {entry[k]!r}")
        if pair in pairs:
            p.add(where, f"field '{key}' duplicates {pair}")
        elif not unknown:
            pairs.append(pair)
    return pairs
