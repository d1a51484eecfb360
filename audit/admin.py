"""The audit trail in the staff console: every event, newest first, filterable by staff member and object."""

import json

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.utils.html import format_html, format_html_join
from pghistory.admin import EventsAdmin

from questdb.console.display import utc


class StaffMemberFilter(admin.SimpleListFilter):
    title = "staff member"
    parameter_name = "staff"

    def lookups(self, request, model_admin):
        return [(str(user.pk), user.get_username()) for user in get_user_model().objects.filter(is_staff=True)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(pgh_context__user=int(self.value()))
        return queryset


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 120 else text[:119] + "…"


class AuditTrailAdmin(EventsAdmin):
    list_display = ("when", "kind", "object_id", "event", "action", "staff", "changes")

    def get_list_display(self, request):
        return self.list_display

    def get_list_filter(self, request):
        return [StaffMemberFilter, *super().get_list_filter(request)]

    @admin.display(description="when (UTC)", ordering="pgh_created_at")
    def when(self, event) -> str:
        return utc(event.pgh_created_at)

    @admin.display(description="model", ordering="pgh_obj_model")
    def kind(self, event) -> str:
        return event.pgh_obj_model.split(".")[-1]

    @admin.display(description="object id")
    def object_id(self, event) -> str:
        return str(event.pgh_obj_id)

    @admin.display(description="event", ordering="pgh_label")
    def event(self, event) -> str:
        return event.pgh_label

    @admin.display(description="staff action")
    def action(self, event) -> str:
        return (event.pgh_context or {}).get("action") or "—"

    @admin.display(description="by")
    def staff(self, event) -> str:
        user_id = (event.pgh_context or {}).get("user")
        if user_id is None:
            return "not staff (API, identity app or SQL)"
        user = get_user_model().objects.filter(pk=user_id).first()
        return user.get_username() if user else f"staff #{user_id}"

    @admin.display(description="before → after")
    def changes(self, event):
        diff = event.pgh_diff or {}
        if not diff:
            return "—"
        return format_html(
            "<ul class='audit-diff'>{}</ul>",
            format_html_join(
                "", "<li><b>{}</b>: {} → {}</li>", ((k, _short(b), _short(a)) for k, (b, a) in sorted(diff.items()))
            ),
        )
