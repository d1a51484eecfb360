from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from characters import services
from characters.models import Character
from questdb.admin import FilterLookupsOnly
from questdb.errors import DomainError


class PendingDeletionFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("pending_deletion", "Pending deletion")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.live()
        if self.value() == "pending_deletion":
            return queryset.pending_deletion()
        return queryset


class CharacterForm(forms.ModelForm):
    """Runs the same rules as the API, so staff cannot save what the API would refuse."""

    class Meta:
        model = Character
        fields = ("user", "name", "money", "stats", "inventory", "skills", "looks", "position", "is_active")

    def clean(self):
        cleaned = super().clean()
        changes = {f: cleaned[f] for f in services.UPDATABLE_FIELDS if f in cleaned and f in self.changed_data}
        try:
            if "name" in cleaned:
                services.validate_name(cleaned["name"])
            current = self.instance if self.instance.pk else None
            cleaned.update(services.validate_fields(changes, allowed=services.UPDATABLE_FIELDS, current=current))
        except DomainError as error:
            raise ValidationError({error.field: error.message} if error.field else error.message) from None
        return cleaned


@admin.register(Character)
class CharacterAdmin(FilterLookupsOnly, admin.ModelAdmin):
    form = CharacterForm
    list_display = ("name", "user", "money", "is_active", "deleted_at", "purge_at", "created_at")
    list_filter = (PendingDeletionFilter, "is_active")
    search_fields = ("name", "user__username")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("id", "deleted_at", "purge_at", "created_at", "updated_at")
    actions = ["schedule_deletion", "restore"]

    def get_readonly_fields(self, request, obj=None):
        # Owner and name are fixed once created, as in the API.
        return self.readonly_fields + (("user", "name") if obj else ())

    def save_model(self, request, obj, form, change) -> None:
        fields = {f: form.cleaned_data[f] for f in services.STARTING_FIELDS if f in form.cleaned_data}
        try:
            if change:
                changes = {f: form.cleaned_data[f] for f in services.UPDATABLE_FIELDS if f in form.changed_data}
                saved = services.character_update(character_id=obj.pk, changes=changes)
            else:
                saved = services.character_create(user_id=obj.user_id, name=obj.name, **fields)
        except DomainError as error:
            # The admin's form has no 4xx: report the refusal and leave the row as it was.
            self.message_user(request, f"Not saved: {error.message}", messages.ERROR)
            return
        obj.pk, obj._state.adding = saved.pk, False

    @admin.action(description="Schedule deletion (grace period applies)")
    def schedule_deletion(self, request, queryset) -> None:
        for character in queryset:
            services.character_schedule_deletion(character_id=character.pk)
        self.message_user(request, f"Scheduled {queryset.count()} character(s) for deletion.")

    @admin.action(description="Restore characters pending deletion")
    def restore(self, request, queryset) -> None:
        restored = 0
        for character in queryset.pending_deletion():
            services.character_restore(character_id=character.pk)
            restored += 1
        self.message_user(request, f"Restored {restored} character(s).")
