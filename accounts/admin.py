from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone

from accounts import services
from accounts.models import SignInAccount, User
from questdb.admin import FilterLookupsOnly
from questdb.console import registry
from questdb.console.actions import staff_action
from questdb.console.confirmation import confirmation, confirmed
from questdb.console.display import utc, utc_column


class SignInAccountInline(admin.TabularInline):
    """Which providers a user signs in with, for support staff. Never the password hash or tokens."""

    model = SignInAccount
    fields = ("provider_id", "account_id", "created")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "linked sign-in provider"
    created = utc_column("created_at", "created")

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # the identity app links providers

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class BanForm(forms.Form):
    DURATIONS = [("1", "1 day"), ("7", "7 days"), ("30", "30 days"), ("", "No end (until unbanned)")]
    reason = forms.CharField(
        max_length=500, help_text="Shown to support staff; the identity app may show it to the user."
    )
    duration = forms.ChoiceField(choices=DURATIONS, required=False, initial="7")

    def expires(self):
        days = self.cleaned_data["duration"]
        return timezone.now() + timedelta(days=int(days)) if days else None


@admin.register(User)
class UserAdmin(FilterLookupsOnly, admin.ModelAdmin):
    change_form_template = "console/accounts/change_form.html"
    search_fields = ("username", "email", "name")
    ordering = ("-created_at",)
    list_per_page = 50
    inlines = [SignInAccountInline]  # and what the apps above add (questdb.console.registry)
    # Every text column is unbounded (better-auth writes any length), yet each holds one line.
    formfield_overrides = {models.TextField: {"widget": forms.TextInput(attrs={"class": "vTextField"})}}
    actions = ["sign_out_everywhere"]
    created = utc_column("created_at", "created")
    updated = utc_column("updated_at", "updated")

    list_display = ("username", "email", "name", "role", "ban_state", "email_verified", "created")
    list_filter = ("role", "email_verified", "banned")
    # Bans change only through Ban/Unban, which also sign the user out.
    readonly_fields = ("id", "created", "updated", *services.BAN_FIELDS)

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

    def get_inlines(self, request, obj):
        return [*self.inlines, *registry.user_page_inlines()]

    def save_model(self, request, obj, form, change) -> None:
        services.user_save(user=obj)

    def delete_model(self, request, obj) -> None:
        services.user_delete(user=obj)

    def delete_queryset(self, request, queryset) -> None:
        for user in queryset:
            services.user_delete(user=user)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(
            {
                "is_banned": bool(obj is not None and obj.banned),
                "audit_url": reverse("admin:audit_auditevent_changelist")
                + (f"?obj=accounts.user:{obj.pk}&method=tracks" if obj else ""),
            }
        )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.display(description="ban")
    def ban_state(self, user: User) -> str:
        if not user.banned:
            return "—"
        return f"Banned until {utc(user.ban_expires)}" if user.ban_expires else "Banned (no end)"

    # -- staff actions ------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/sign-out/", wrap(self.sign_out_view), name="user_sign_out"),
            path("<path:object_id>/ban/", wrap(self.ban_view), name="user_ban"),
            path("<path:object_id>/unban/", wrap(self.unban_view), name="user_unban"),
            *super().get_urls(),
        ]

    def _user(self, request, object_id) -> User:
        if not self.has_change_permission(request):
            raise PermissionDenied
        return get_object_or_404(User, pk=object_id)

    def _change_page(self, user: User):
        return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[user.pk]))

    def _sign_out_confirmation(self, users) -> dict:
        return {
            "title": "Sign out everywhere",
            "lines": ["Every session of these users is deleted: they are signed out on every device at once."],
            "button": "Yes, sign them out",
            "objects": users,
        }

    def _sign_out(self, request, users) -> None:
        ended = 0
        with staff_action("sign_out_everywhere"):
            for user in users:
                ended += registry.sign_out_user(user_id=user.pk)
                self.log_change(request, user, "Signed out everywhere.")
        self.message_user(request, f"Ended {ended} session(s) of {len(users)} user(s).", messages.SUCCESS)

    def sign_out_view(self, request, object_id):
        user = self._user(request, object_id)
        if not confirmed(request):
            return confirmation(request, self, **self._sign_out_confirmation([user]))
        self._sign_out(request, [user])
        return self._change_page(user)

    @admin.action(description="Sign out everywhere (delete their sessions)", permissions=["change"])
    def sign_out_everywhere(self, request, queryset):
        users = list(queryset)
        if not confirmed(request):
            return confirmation(request, self, action="sign_out_everywhere", **self._sign_out_confirmation(users))
        self._sign_out(request, users)
        return None

    def ban_view(self, request, object_id):
        user = self._user(request, object_id)
        form = BanForm(request.POST if confirmed(request) else None)
        if not form.is_valid():
            return confirmation(
                request,
                self,
                title=f"Ban {user}",
                lines=["The user is banned and signed out everywhere; the identity app refuses their sign-ins."],
                button="Ban",
                fields=form,
            )
        with staff_action("ban"), transaction.atomic():
            services.user_ban(user=user, reason=form.cleaned_data["reason"], expires=form.expires())
            ended = registry.sign_out_user(user_id=user.pk)
            self.log_change(request, user, f"Banned until {utc(user.ban_expires)}: {user.ban_reason}")
        self.message_user(request, f"Banned {user}; ended {ended} session(s).", messages.SUCCESS)
        return self._change_page(user)

    def unban_view(self, request, object_id):
        user = self._user(request, object_id)
        if not confirmed(request):
            return confirmation(
                request, self, title=f"Unban {user}", lines=["The user may sign in again."], button="Unban"
            )
        with staff_action("unban"):
            services.user_unban(user=user)
            self.log_change(request, user, "Unbanned.")
        self.message_user(request, f"Unbanned {user}.", messages.SUCCESS)
        return self._change_page(user)
