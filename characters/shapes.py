"""The documented shapes of a character's JSON columns, their starting values and validation.

Each validator returns a normalized copy or raises `ShapeError` naming the problem.
"""

from typing import Any

STAT_KEYS = ("level", "experience", "strength", "dexterity", "intelligence", "vitality", "hp", "mp")
LOOKS_KEYS = ("race", "gender", "face", "hair")
POSITION_KEYS = ("map_id", "x", "y", "z")
MAX_INVENTORY_ITEMS = 500
MAX_SKILLS = 500


class ShapeError(ValueError):
    pass


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


def _non_negative_int(value: Any, label: str) -> int:
    # bool is an int subclass in Python; JSON true is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**53:
        raise ShapeError(f"{label} must be a non-negative integer.")
    return value


def _number(value: Any, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > 1e9:
        raise ShapeError(f"{label} must be a finite number.")
    return float(value)


def _object_with_keys(value: Any, keys: tuple[str, ...], label: str, *, partial_base: dict | None) -> dict:
    if not isinstance(value, dict):
        raise ShapeError(f"{label} must be an object with keys {', '.join(keys)}.")
    unknown = set(value) - set(keys)
    if unknown:
        raise ShapeError(f"{label} has unknown keys: {', '.join(sorted(unknown))}.")
    merged = {**(partial_base or {}), **value}
    missing = [key for key in keys if key not in merged]
    if missing:
        raise ShapeError(f"{label} is missing keys: {', '.join(missing)}.")
    return merged


def validate_stats(value: Any, *, base: dict | None = None) -> dict:
    stats = _object_with_keys(value, STAT_KEYS, "stats", partial_base=base)
    return {key: _non_negative_int(stats[key], f"stats.{key}") for key in STAT_KEYS}


def validate_looks(value: Any, *, base: dict | None = None) -> dict:
    looks = _object_with_keys(value, LOOKS_KEYS, "looks", partial_base=base)
    return {key: _non_negative_int(looks[key], f"looks.{key}") for key in LOOKS_KEYS}


def validate_position(value: Any, *, base: dict | None = None) -> dict:
    position = _object_with_keys(value, POSITION_KEYS, "position", partial_base=base)
    return {
        "map_id": _non_negative_int(position["map_id"], "position.map_id"),
        **{axis: _number(position[axis], f"position.{axis}") for axis in ("x", "y", "z")},
    }


def validate_inventory(value: Any, *, base: Any = None) -> list:
    if not isinstance(value, list) or len(value) > MAX_INVENTORY_ITEMS:
        raise ShapeError(f"inventory must be a list of at most {MAX_INVENTORY_ITEMS} items.")
    items, slots = [], set()
    for index, item in enumerate(value):
        entry = _object_with_keys(item, ("slot", "item_id", "quantity"), f"inventory[{index}]", partial_base=None)
        slot = _non_negative_int(entry["slot"], f"inventory[{index}].slot")
        if slot in slots:
            raise ShapeError(f"inventory[{index}].slot {slot} is used twice.")
        slots.add(slot)
        items.append(
            {
                "slot": slot,
                "item_id": _non_negative_int(entry["item_id"], f"inventory[{index}].item_id"),
                "quantity": _non_negative_int(entry["quantity"], f"inventory[{index}].quantity"),
            }
        )
    return items


def validate_skills(value: Any, *, base: Any = None) -> list:
    if not isinstance(value, list) or len(value) > MAX_SKILLS:
        raise ShapeError(f"skills must be a list of at most {MAX_SKILLS} skills.")
    skills, ids = [], set()
    for index, skill in enumerate(value):
        entry = _object_with_keys(skill, ("skill_id", "level"), f"skills[{index}]", partial_base=None)
        skill_id = _non_negative_int(entry["skill_id"], f"skills[{index}].skill_id")
        if skill_id in ids:
            raise ShapeError(f"skills[{index}].skill_id {skill_id} is listed twice.")
        ids.add(skill_id)
        skills.append({"skill_id": skill_id, "level": _non_negative_int(entry["level"], f"skills[{index}].level")})
    return skills


# Field name -> validator; the API, the admin and the services all use this table.
VALIDATORS = {
    "stats": validate_stats,
    "looks": validate_looks,
    "position": validate_position,
    "inventory": validate_inventory,
    "skills": validate_skills,
}
