"""Statements the ORM compiles once, for the hottest write paths.

Compiling a queryset to SQL was the largest share of a write's CPU in profiles under load (refresh, create).
A `Compiled` statement is built from the same querysets as everywhere else, with stand-in values, the first
time it is used; each call then swaps its own values in for the stand-ins. The stand-ins are matched as the
backend prepares them (a UUID is hex text on SQLite), so every backend Django supports works.
"""

import functools
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model


class Compiled:
    """`build(**stand_ins)` returns (sql, params); `bind(**values)` returns them with this call's values."""

    def __init__(self, build: Callable[..., tuple[str, Any]], **stand_ins: tuple[Any, Field]):
        self._build = build
        self._stand_ins = stand_ins  # name -> (a value no caller passes, the field that prepares it)

    @functools.cached_property
    def _statement(self) -> tuple[str, tuple, list[str | None]]:
        connection = connections[DEFAULT_DB_ALIAS]
        slots = {field.get_db_prep_value(value, connection): name for name, (value, field) in self._stand_ins.items()}
        if len(slots) != len(self._stand_ins):
            raise ValueError("stand-in values must differ once prepared")
        sql, params = self._build(**{name: value for name, (value, _field) in self._stand_ins.items()})
        return sql, tuple(params), [_slot(slots, param) for param in params]

    def bind(self, **values: Any) -> tuple[str, list]:
        connection = connections[DEFAULT_DB_ALIAS]
        sql, params, slots = self._statement
        prepared = {
            name: field.get_db_prep_value(values[name], connection) for name, (_v, field) in self._stand_ins.items()
        }
        return sql, [param if slot is None else prepared[slot] for param, slot in zip(params, slots, strict=True)]


def _slot(slots: dict, param) -> str | None:
    try:
        return slots.get(param)
    except TypeError:  # an unhashable parameter (a list) is never a stand-in
        return None


def row_converter(fields: list[Field]) -> Callable[[tuple], tuple]:
    """Turns a raw row whose columns are `fields` into Python values, as the ORM's compiler would."""
    connection = connections[DEFAULT_DB_ALIAS]
    columns = []
    for field in fields:
        expression = field.get_col(field.model._meta.db_table)  # a foreign key's column converts as its target
        converters = [*connection.ops.get_db_converters(expression), *expression.get_db_converters(connection)]
        columns.append((expression, converters))

    def convert(row: tuple) -> tuple:
        connection = connections[DEFAULT_DB_ALIAS]  # this thread's: a connection belongs to the thread that opened it
        values = []
        for value, (expression, converters) in zip(row, columns, strict=True):
            for converter in converters:
                value = converter(value, expression, connection)
            values.append(value)
        return tuple(values)

    return convert


def instance_loader(model: type[Model], *, related: str) -> Callable[[tuple], Model]:
    """Turns a raw row of `model.objects.select_related(related)` into an instance with its related one attached.

    Such a row holds the model's concrete columns, then the related model's, in their declared order (as the ORM's
    compiler selects them); each part becomes an instance as the ORM builds it (`from_db`), so it can be saved.
    """
    relation = model._meta.get_field(related)
    parts = [
        (model, list(model._meta.concrete_fields)),
        (relation.related_model, list(relation.related_model._meta.concrete_fields)),
    ]
    converters = [
        (part, row_converter(fields), [field.attname for field in fields], len(fields)) for part, fields in parts
    ]

    def load(row: tuple) -> Model:
        instances, start = [], 0
        for part, convert, names, width in converters:
            instances.append(part.from_db(DEFAULT_DB_ALIAS, names, convert(row[start : start + width])))
            start += width
        if start != len(row):
            raise ValueError(f"a {model.__name__} row with {len(row)} columns, not {start}")
        instance, related_instance = instances
        relation.set_cached_value(instance, related_instance)
        return instance

    return load
