"""Naming what staff did, for the audit trail (the audit app): the context every event of a staff action carries."""

import contextlib

import pghistory
from django.db import connection


def recording() -> bool:
    """The trail is kept by PostgreSQL triggers; on the embedded SQLite default there is none."""
    return connection.vendor == "postgresql"


def staff_action(name: str):
    """Label the events written inside this block with the staff action `name`."""
    return pghistory.context(action=name) if recording() else contextlib.nullcontext()
