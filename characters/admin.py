"""Characters in the staff console: every write goes through characters.services, so the API's rules hold."""

import json
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django_jsonform.forms.fields import JSONFormField
from django_jsonform.utils import ErrorMap

from characters import services, shapes
from characters.models import Character
from questdb.admin import FilterLookupsOnly
from questdb.console import registry
from questdb.console.actions import staff_action
from questdb.console.confirmation import confirmation, confirmed
from questdb.console.display import time_left, utc, utc_column
from questdb.console.saves import RefusedSaveMixin
from questdb.errors import DomainError


class DeletionStatusFilter(admin.SimpleListFilter):
    title = "deletion status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("active", "Active (not scheduled for deletion)"),
            ("pending_deletion", "Pending deletion (restorable)"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.live()
        if self.value() == "pending_deletion":
            return queryset.pending_deletion()
        return queryset


class PlayableFilter(admin.SimpleListFilter):
    title = "playable (is_active, set by the game)"
    parameter_name = "playable"

    def lookups(self, request, model_admin):
        return [("yes", "Playable"), ("no", "Disabled by the game")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(is_active=self.value() == "yes")
        return queryset


def _editor(column: str, *, raw: bool) -> forms.Field:
    """A structured editor rendered from the column's JSON Schema, or a raw JSON textarea for power users."""
    schema = shapes.SCHEMAS[column]
    required = schema["type"] == "object"  # an empty list is a value, not a missing one
    if raw:
        return PrettyJSONField(
            label=schema["title"],
            required=required,
            help_text=f"Raw JSON. {schema['description']}",
            widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "class": "vLargeTextField raw-json"}),
        )
    return ShapeEditorField(
        column=column, schema=schema, label=schema["title"], required=required, help_text=schema["description"]
    )


class ShapeEditorField(JSONFormField):
    """django-jsonform's editor, checked by characters.shapes (so its messages are the API's), marked in place."""

    def __init__(self, *, column: str, **kwargs):
        self.column = column
        super().__init__(**kwargs)

    def validate(self, value):
        forms.JSONField.validate(self, value)
        if value in self.empty_values and not self.required:
            return
        found = shapes.problems(self.column, value)
        if found:
            error_map = ErrorMap()
            for path, message in found:
                error_map.append(coords=path, msg=message)
            self.add_error(error_map)  # shown beside the entry in the editor
            raise ValidationError([message for _, message in found])


class PrettyJSONField(forms.JSONField):
    def prepare_value(self, value):
        return value if isinstance(value, str) else json.dumps(value, indent=2)


class CharacterForm(forms.ModelForm):
    """Checks every field against the rules the API applies, and reports all problems at once."""

    raw_json = False

    class Meta:
        model = Character
        fields = ("user", "name", "money", "stats", "inventory", "skills", "looks", "position", "is_active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for column in shapes.SCHEMAS:
            if column in self.fields:
                self.fields[column] = _editor(column, raw=self.raw_json)

    def _clean_shape(self, column: str):
        value = self.cleaned_data.get(column)
        if value is None and shapes.SCHEMAS[column]["type"] == "array":
            value = []
        problems = shapes.errors(column, value)
        if problems:
            raise ValidationError(problems)
        return shapes.validate(column, value)

    def clean_stats(self):
        return self._clean_shape("stats")

    def clean_inventory(self):
        return self._clean_shape("inventory")

    def clean_skills(self):
        return self._clean_shape("skills")

    def clean_looks(self):
        return self._clean_shape("looks")

    def clean_position(self):
        return self._clean_shape("position")

    def clean_money(self):
        money = self.cleaned_data.get("money")
        if money is not None and not 0 <= money <= services.MAX_MONEY:
            raise ValidationError("Money must be between 0 and 9,223,372,036,854,775,807.")
        return money

    def clean_name(self):
        name = self.cleaned_data.get("name")
        try:
            return services.validate_name(name)
        except DomainError as error:
            raise ValidationError(error.message) from None

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and self.instance.is_pending_deletion:
            raise ValidationError("The character is pending deletion; restore it first.")
        return cleaned


class CharacterInline(admin.TabularInline):
    """A user's characters on the user's page."""

    model = Character
    fields = ("name", "money", "is_active", "deleted", "purges", "created")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False
    deleted = utc_column("deleted_at", "deletion scheduled")
    purges = utc_column("purge_at", "purged at")
    created = utc_column("created_at", "created")

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # characters are created through their own form, which applies the rules


def purge_figures() -> dict:
    """The front page's pending deletions: how many, the next purge, and how many are due now."""
    pending = Character.objects.pending_deletion()
    return {
        "pending_purges": pending.count(),
        "next_purge": pending.order_by("purge_at").values_list("purge_at", flat=True).first(),
        "due_now": Character.objects.due_for_purge(timezone.now()).count(),
    }


registry.add_user_page_inline(CharacterInline)
registry.add_dashboard_figures(purge_figures)


@admin.register(Character)
class CharacterAdmin(FilterLookupsOnly, RefusedSaveMixin, admin.ModelAdmin):
    form = CharacterForm
    change_form_template = "console/characters/change_form.html"
    list_display = ("name", "owner", "level", "money_display", "status", "created")
    list_filter = (DeletionStatusFilter, PlayableFilter)
    search_fields = ("name", "user__username")
    list_select_related = ("user",)
    list_per_page = 50
    raw_id_fields = ("user",)
    actions = ["schedule_deletion", "restore", "purge_now"]
    created = utc_column("created_at", "created")
    updated = utc_column("updated_at", "updated")
    deleted = utc_column("deleted_at", "deletion scheduled")
    purges = utc_column("purge_at", "purged at")

    # -- the change form ----------------------------------------------------------
    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # ?raw=1: the JSON columns as raw JSON, for power users.
        return type(form.__name__, (form,), {"raw_json": request.GET.get("raw") == "1"})

    def get_fieldsets(self, request, obj=None):
        game_data = ("money", "stats", "looks", "position", "inventory", "skills", "is_active")
        if obj is None:
            return [(None, {"fields": ("user", "name")}), ("Game data", {"fields": game_data})]
        fieldsets = [
            (None, {"fields": ("id", "user", "name")}),
            ("Game data", {"fields": game_data}),
            ("Times", {"fields": ("created", "updated")}),
        ]
        if obj.is_pending_deletion:
            fieldsets.insert(0, ("Pending deletion", {"fields": ("deleted", "purges", "time_left")}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        fixed = ("id", "user", "name", "created", "updated", "deleted", "purges", "time_left")
        if obj.is_pending_deletion:
            # Saves are refused until it is restored, so nothing is editable.
            return (*fixed, "money", "stats", "looks", "position", "inventory", "skills", "is_active")
        return fixed

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        pending = obj is not None and obj.is_pending_deletion
        context.update(
            {
                "pending_deletion": pending,
                "purge_at_utc": utc(obj.purge_at) if pending else None,
                "raw_json": request.GET.get("raw") == "1",
                "can_purge": obj is not None and self.has_purge_permission(request),
                "audit_url": _audit_url(obj) if obj is not None else None,
            }
        )
        if pending:
            context.update({"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False})
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            changes = {f: form.cleaned_data[f] for f in services.UPDATABLE_FIELDS if f in form.changed_data}
            saved = services.character_update(character_id=obj.pk, changes=changes)
        else:
            starting = {f: form.cleaned_data[f] for f in services.STARTING_FIELDS if f in form.cleaned_data}
            saved = services.character_create(user_id=obj.user_id, name=obj.name, **starting)
        obj.pk, obj._state.adding = saved.pk, False
        obj.__dict__.update({f: getattr(saved, f) for f in ("created_at", "updated_at", "deleted_at", "purge_at")})

    # -- list columns -----------------------------------------------------------
    @admin.display(description="owner", ordering="user__username")
    def owner(self, character: Character):
        url = reverse("admin:accounts_user_change", args=[character.user_id])
        return format_html('<a href="{}">{}</a>', url, character.user.username)

    @admin.display(description="level", ordering="stats__level")
    def level(self, character: Character):
        return (character.stats or {}).get("level")

    @admin.display(description="money", ordering="money")
    def money_display(self, character: Character) -> str:
        return f"{character.money:,}"

    @admin.display(description="status")
    def status(self, character: Character) -> str:
        if not character.is_pending_deletion:
            return "Active"
        return f"Pending deletion — purged in {time_left(character.purge_at - timezone.now())}"

    @admin.display(description="time left to restore")
    def time_left(self, character: Character) -> str:
        return time_left(character.purge_at - timezone.now()) if character.purge_at else "—"

    # -- deletion: scheduled, restorable, and a separate purge ---------------------
    def has_delete_permission(self, request, obj=None) -> bool:
        # Django's own Delete would remove the row at once, skipping the grace period; see the actions below.
        return False

    def has_purge_permission(self, request) -> bool:
        return request.user.has_perm("characters.delete_character")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/schedule-deletion/", wrap(self.schedule_deletion_view), name="character_delete"),
            path("<path:object_id>/restore/", wrap(self.restore_view), name="character_restore"),
            path("<path:object_id>/purge/", wrap(self.purge_view), name="character_purge"),
            *super().get_urls(),
        ]

    def _character(self, request, object_id) -> Character:
        if not self.has_change_permission(request):
            raise PermissionDenied
        return get_object_or_404(Character, pk=object_id)

    def _change_page(self, character: Character) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:characters_character_change", args=[character.pk]))

    def schedule_deletion_view(self, request, object_id):
        character = self._character(request, object_id)
        if not confirmed(request):
            return confirmation(request, self, **self._schedule_confirmation([character]))
        self._schedule([character], request)
        return self._change_page(character)

    def restore_view(self, request, object_id):
        character = self._character(request, object_id)
        if request.method == "POST":
            self._restore([character], request)
        return self._change_page(character)

    def purge_view(self, request, object_id):
        character = self._character(request, object_id)
        if not self.has_purge_permission(request):
            raise PermissionDenied
        if not confirmed(request):
            return confirmation(request, self, **self._purge_confirmation([character]))
        self._purge([character], request)
        return HttpResponseRedirect(reverse("admin:characters_character_changelist"))

    def _schedule_confirmation(self, characters) -> dict:
        purge_at = timezone.now() + timedelta(seconds=settings.CHARACTER_DELETE_GRACE)
        return {
            "title": "Schedule deletion",
            "lines": [
                "These characters will be hidden from the game now and deleted for good at "
                f"{utc(purge_at)} (in {time_left(purge_at - timezone.now())}).",
                "Until then they can be restored from their page or with the Restore action.",
            ],
            "button": "Yes, schedule deletion",
            "objects": characters,
        }

    def _purge_confirmation(self, characters) -> dict:
        return {
            "title": "Purge now",
            "lines": ["These characters will be deleted immediately, without the grace period."],
            "button": "Yes, purge now",
            "objects": characters,
            "irreversible": True,
        }

    def _schedule(self, characters, request) -> None:
        with staff_action("schedule_deletion"):
            for character in characters:
                scheduled = services.character_schedule_deletion(character_id=character.pk)
                self.log_change(request, scheduled, f"Scheduled deletion; purged at {utc(scheduled.purge_at)}.")
        self.message_user(request, f"Scheduled {len(characters)} character(s) for deletion.", messages.SUCCESS)

    def _restore(self, characters, request) -> None:
        restored = 0
        with staff_action("restore"):
            for character in characters:
                if character.is_pending_deletion:
                    services.character_restore(character_id=character.pk)
                    self.log_change(request, character, "Restored.")
                    restored += 1
        level = messages.SUCCESS if restored else messages.WARNING
        self.message_user(request, f"Restored {restored} character(s).", level)

    def _purge(self, characters, request) -> None:
        with staff_action("purge_now"):
            self.log_deletions(request, characters)
            for character in characters:
                services.character_purge(character_id=character.pk)
        self.message_user(request, f"Purged {len(characters)} character(s) for good.", messages.SUCCESS)

    @admin.action(description="Schedule deletion (grace period applies)", permissions=["change"])
    def schedule_deletion(self, request, queryset):
        characters = list(queryset.live())
        if not confirmed(request):
            return confirmation(request, self, action="schedule_deletion", **self._schedule_confirmation(characters))
        self._schedule(characters, request)
        return None

    @admin.action(description="Restore characters pending deletion", permissions=["change"])
    def restore(self, request, queryset) -> None:
        self._restore(list(queryset.pending_deletion()), request)

    @admin.action(description="Purge now (cannot be undone)", permissions=["purge"])
    def purge_now(self, request, queryset):
        characters = list(queryset)
        if not confirmed(request):
            return confirmation(request, self, action="purge_now", **self._purge_confirmation(characters))
        self._purge(characters, request)
        return None


def _audit_url(obj) -> str:
    return reverse("admin:audit_auditevent_changelist") + f"?obj={obj._meta.label_lower}:{obj.pk}&method=tracks"
