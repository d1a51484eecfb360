from django.contrib import admin
from django.utils import timezone

from questdb.admin import FilterLookupsOnly
from sessions_app import services
from sessions_app.models import Session


class LivenessFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "Live"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.live()
        if self.value() == "expired":
            return queryset.expired()
        return queryset


@admin.register(Session)
class SessionAdmin(FilterLookupsOnly, admin.ModelAdmin):
    # The token is a bearer secret: never listed, never shown in the form.
    exclude = ("token",)
    list_display = ("id", "user", "expires_at", "is_live", "ip_address", "created_at")
    list_filter = (LivenessFilter,)
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    # Sessions change only through domain actions ("Expire now"), never by hand-editing a row.
    readonly_fields = ("id", "user", "expires_at", "ip_address", "user_agent", "created_at", "updated_at")
    actions = ["expire_now"]

    def has_add_permission(self, request) -> bool:
        return False  # sessions are created by the identity app at sign-in

    @admin.display(boolean=True, description="live")
    def is_live(self, session: Session) -> bool:
        return not session.is_expired(timezone.now())

    @admin.action(description="Expire now")
    def expire_now(self, request, queryset) -> None:
        expired = services.sessions_expire(session_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"Expired {expired} session(s).")
