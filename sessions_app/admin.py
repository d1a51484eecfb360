from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from questdb.admin import FilterLookupsOnly
from questdb.console import registry
from questdb.console.actions import staff_action
from questdb.console.confirmation import confirmation, confirmed
from questdb.console.display import utc_column
from sessions_app import services
from sessions_app.models import Session


class LivenessFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "Live (not yet expired)"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.live()
        if self.value() == "expired":
            return queryset.expired()
        return queryset


class SessionInline(admin.TabularInline):
    """A user's sessions on the user's page, read-only; "Sign out everywhere" there ends them all."""

    model = Session
    fields = ("ip_address", "user_agent", "expires", "created")
    readonly_fields = fields
    exclude = ("token",)
    extra = 0
    show_change_link = True
    can_delete = False
    expires = utc_column("expires_at", "expires")
    created = utc_column("created_at", "created")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


registry.add_user_page_inline(SessionInline)
registry.set_sign_out_user(services.sessions_sign_out_user)


@admin.register(Session)
class SessionAdmin(FilterLookupsOnly, admin.ModelAdmin):
    # The token is a bearer secret: never listed, never shown in the form, never searched.
    exclude = ("token",)
    list_display = ("short_id", "owner", "expires", "is_live", "ip_address", "agent", "created")
    list_filter = (LivenessFilter,)
    search_fields = ("user__username", "user__email", "ip_address")
    search_help_text = "Username, email or IP address."
    list_select_related = ("user",)
    list_per_page = 50
    # Sessions change only through domain actions ("Expire now", "Sign out everywhere"), never by hand.
    fields = ("id", "user", "expires", "ip_address", "user_agent", "created", "updated")
    readonly_fields = fields
    actions = ["expire_now"]
    expires = utc_column("expires_at", "expires")
    created = utc_column("created_at", "created")
    updated = utc_column("updated_at", "updated")

    def has_add_permission(self, request) -> bool:
        return False  # sessions are created by the identity app at sign-in

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update({"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False})
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.display(description="session", ordering="id")
    def short_id(self, session: Session) -> str:
        return str(session.id)[:8]

    @admin.display(description="user", ordering="user__username")
    def owner(self, session: Session):
        url = reverse("admin:accounts_user_change", args=[session.user_id])
        return format_html('<a href="{}">{}</a>', url, session.user.username)

    @admin.display(description="user agent")
    def agent(self, session: Session) -> str:
        agent = session.user_agent or "—"
        return agent if len(agent) <= 60 else agent[:59] + "…"

    @admin.display(boolean=True, description="live")
    def is_live(self, session: Session) -> bool:
        return not session.is_expired(timezone.now())

    @admin.action(description="Expire now", permissions=["change"])
    def expire_now(self, request, queryset):
        sessions = list(queryset.select_related("user").live())
        if not confirmed(request):
            return confirmation(
                request,
                self,
                title="Expire sessions",
                lines=["These sessions will end now; their users must sign in again."],
                button="Yes, expire them",
                objects=sessions,
                action="expire_now",
            )
        with staff_action("expire_sessions"):
            expired = services.sessions_expire(session_ids=[s.id for s in sessions])
        for session in sessions:
            self.log_change(request, session, "Expired now.")
        self.message_user(request, f"Expired {expired} session(s).", messages.SUCCESS)
        return None
