from django import forms
from django.conf import settings
from django.contrib import admin
from django.db import models

from accounts import services
from accounts.models import SignInAccount, User
from characters.models import Character
from questdb.admin import FilterLookupsOnly


class CharacterInline(admin.TabularInline):
    model = Character
    fields = ("name", "money", "is_active", "deleted_at", "purge_at", "created_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # characters are created through their own form, which applies the rules


class SignInAccountInline(admin.TabularInline):
    """Which providers a user signs in with, for support staff. Never the password hash or tokens."""

    model = SignInAccount
    fields = ("provider_id", "account_id", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "linked sign-in provider"

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # the identity app links providers

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class UserAdmin(FilterLookupsOnly, admin.ModelAdmin):
    list_display = ("username", "email", "name", "role", "banned", "email_verified", "created_at")
    list_filter = ("role", "banned", "email_verified")
    search_fields = ("username", "email", "name")
    readonly_fields = ("id", "created_at", "updated_at")
    ordering = ("-created_at",)
    inlines = [SignInAccountInline, CharacterInline]
    # Every text column is unbounded (better-auth writes any length), yet each holds one line.
    formfield_overrides = {models.TextField: {"widget": forms.TextInput(attrs={"class": "vTextField"})}}

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.null and isinstance(field, forms.CharField):
            field.empty_value = None  # an emptied username is NULL, as better-auth leaves it, never ''
        if db_field.name == "role":
            field.help_text = (
                f"Staff may give {', '.join(settings.USER_ROLES)} (USER_ROLES), or several separated by commas. "
                "A role the identity app wrote is kept as long as it is left unchanged."
            )
        return field

    def save_model(self, request, obj, form, change) -> None:
        services.user_save(user=obj)

    def delete_model(self, request, obj) -> None:
        services.user_delete(user=obj)

    def delete_queryset(self, request, queryset) -> None:
        for user in queryset:
            services.user_delete(user=user)
