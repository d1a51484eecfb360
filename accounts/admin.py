from django.contrib import admin
from django.db import models

from accounts import services
from accounts.models import User
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


@admin.register(User)
class UserAdmin(FilterLookupsOnly, admin.ModelAdmin):
    list_display = ("username", "email", "name", "role", "email_verified", "created_at")
    list_filter = ("role", "email_verified")
    search_fields = ("username", "email", "name")
    readonly_fields = ("id", "created_at", "updated_at")
    ordering = ("-created_at",)
    inlines = [CharacterInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request, obj, form, change) -> None:
        services.user_save(user=obj)

    def delete_model(self, request, obj) -> None:
        services.user_delete(user=obj)

    def delete_queryset(self, request, queryset) -> None:
        for user in queryset:
            services.user_delete(user=user)
