"""Comparison code for the questdb benchmark: questdb's apps without their cache-invalidation signals."""

from django.apps import AppConfig


class NaiveAccounts(AppConfig):
    name = "accounts"
    label = "accounts"


class NaiveCharacters(AppConfig):
    name = "characters"
    label = "characters"


class NaiveSessions(AppConfig):
    name = "sessions_app"
    label = "sessions_app"
