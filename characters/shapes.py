"""The one definition of a character's JSON columns: a JSON Schema per column, with its starting value.

Everything else is derived from `SCHEMAS`: the services validate with it (`errors`, `validate`),
the OpenAPI components are these schemas (characters/api/serializers.py), and the admin's
structured editors render them (django-jsonform reads JSON Schema).
"""

import math
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

STAT_KEYS = ("level", "experience", "strength", "dexterity", "intelligence", "vitality", "hp", "mp")
LOOKS_KEYS = ("race", "gender", "face", "hair")
POSITION_KEYS = ("map_id", "x", "y", "z")
MAX_INVENTORY_ITEMS = 500
MAX_SKILLS = 500
MAX_COUNT = 2**53  # the largest integer every JSON reader keeps exactly
MAX_COORDINATE = 1e9

COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}
COORDINATE = {"type": "number", "minimum": -MAX_COORDINATE, "maximum": MAX_COORDINATE}


def _record(title: str, description: str, fields: dict[str, dict]) -> dict:
    return {
        "type": "object",
        "title": title,
        "description": description,
        "properties": {key: {"title": key.replace("_", " "), **schema} for key, schema in fields.items()},
        "required": list(fields),
        "additionalProperties": False,
    }


def _table(title: str, description: str, row: dict, *, max_items: int, unique_by: str) -> dict:
    # `x-unique-by` is questdb's keyword: no two rows share that key (JSON Schema's uniqueItems compares whole rows).
    return {
        "type": "array",
        "title": title,
        "description": description,
        "items": row,
        "maxItems": max_items,
        "x-unique-by": unique_by,
    }


STATS = _record("Stats", "A character's level, experience and attributes.", {key: COUNT for key in STAT_KEYS})
LOOKS = _record("Looks", "Appearance ids chosen at creation.", {key: COUNT for key in LOOKS_KEYS})
POSITION = _record(
    "Position", "Where the character stands.", {"map_id": COUNT, "x": COORDINATE, "y": COORDINATE, "z": COORDINATE}
)
INVENTORY_ITEM = _record(
    "InventoryItem", "A stack of one item in one slot.", dict.fromkeys(("slot", "item_id", "quantity"), COUNT)
)
SKILL = _record("Skill", "A learned skill and its level.", dict.fromkeys(("skill_id", "level"), COUNT))
INVENTORY = _table(
    "Inventory",
    "Items by slot; each slot at most once.",
    INVENTORY_ITEM,
    max_items=MAX_INVENTORY_ITEMS,
    unique_by="slot",
)
SKILLS = _table("Skills", "Learned skills; each skill at most once.", SKILL, max_items=MAX_SKILLS, unique_by="skill_id")

# Column -> its schema. Object columns may be sent in part to the API (they merge); list columns replace.
SCHEMAS = {"stats": STATS, "looks": LOOKS, "position": POSITION, "inventory": INVENTORY, "skills": SKILLS}
OBJECT_FIELDS = tuple(field for field, schema in SCHEMAS.items() if schema["type"] == "object")


def default_stats() -> dict:
    return {
        "level": 1,
        "experience": 0,
        "strength": 10,
        "dexterity": 10,
        "intelligence": 10,
        "vitality": 10,
        "hp": 100,
        "mp": 100,
    }


def default_looks() -> dict:
    return {"race": 0, "gender": 0, "face": 1, "hair": 1}


def default_position() -> dict:
    return {"map_id": 1, "x": 0.0, "y": 0.0, "z": 0.0}


def default_inventory() -> list:
    return []


def default_skills() -> list:
    return []


class ShapeError(ValueError):
    """A value that does not fit its column's schema; `messages` lists every problem found."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__(" ".join(messages))


def _unique_by(validator, key, instance, schema):
    seen = set()
    for index, row in enumerate(instance if isinstance(instance, list) else []):
        value = row.get(key) if isinstance(row, dict) else None
        if value is None or isinstance(value, (dict, list)):
            continue
        if value in seen:
            yield ValidationError(f"{key} {value} is used twice.", path=[index, key])
        seen.add(value)


def _is_finite_number(checker, value) -> bool:
    # JSON has no NaN or infinity, and bool is not a number even though Python says so.
    return Draft202012Validator.TYPE_CHECKER.is_type(value, "number") and math.isfinite(value)


_Validator = validators.extend(
    Draft202012Validator,
    validators={"x-unique-by": _unique_by},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("number", _is_finite_number),
)
_VALIDATORS = {field: _Validator(schema) for field, schema in SCHEMAS.items()}


def _label(field: str, path) -> str:
    return field + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def _problem(field: str, error) -> tuple[tuple, str]:
    """Where in the value (a path of keys and indexes) and what, in plain words."""
    path, schema = tuple(error.absolute_path), error.schema
    label = _label(field, path)
    if error.validator == "x-unique-by":
        return path[:-1], f"{_label(field, path[:-1])}: {error.message}"
    if error.validator == "required":
        missing = [key for key in schema["required"] if key not in error.instance]
        return path, f"{label} is missing keys: {', '.join(missing)}."
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(schema["properties"]))
        return path, f"{label} has unknown keys: {', '.join(unknown)}."
    if schema.get("type") == "object":
        return path, f"{label} must be an object with keys {', '.join(schema['properties'])}."
    if schema.get("type") == "array":
        return path, f"{label} must be a list of at most {schema['maxItems']} entries."
    if schema.get("type") == "integer":
        return path, f"{label} must be a whole number from 0 to {schema['maximum']}."
    return path, f"{label} must be a number from {schema['minimum']:g} to {schema['maximum']:g}."


def problems(field: str, value: Any) -> list[tuple[tuple, str]]:
    """Every way `value` misses `field`'s schema, as (path, message), in document order."""
    found = sorted(_VALIDATORS[field].iter_errors(value), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    seen: list[tuple[tuple, str]] = []
    for error in found:
        problem = _problem(field, error)
        if problem not in seen:
            seen.append(problem)
    return seen


def errors(field: str, value: Any) -> list[str]:
    """Every way `value` misses `field`'s schema, in plain words, in document order."""
    return [message for _, message in problems(field, value)]


def validate(field: str, value: Any, *, base: Any = None) -> Any:
    """`value` checked against `field`'s schema, merged into `base` first for object columns."""
    if field in OBJECT_FIELDS and isinstance(value, dict) and isinstance(base, dict):
        value = {**base, **value}
    messages = errors(field, value)
    if messages:
        raise ShapeError(messages)
    return _normalized(SCHEMAS[field], value)


def _normalized(schema: dict, value: Any) -> Any:
    """A valid value in its schema's key order, with whole numbers as int and coordinates as float."""
    if schema["type"] == "object":
        return {key: _normalized(sub, value[key]) for key, sub in schema["properties"].items()}
    if schema["type"] == "array":
        return [_normalized(schema["items"], row) for row in value]
    return int(value) if schema["type"] == "integer" else float(value)
