from django import forms
from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from questdb.models import Scope, ServiceAPIKey

# One API keys section: the library's own APIKey model is not what questdb's API accepts.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


class ServiceAPIKeyForm(forms.ModelForm):
    # No default: whoever creates a key says what it may do.
    scope = forms.ChoiceField(
        choices=[("", "— choose a scope —"), *Scope.choices],
        help_text="Read: GET/HEAD only. Write: every operation, including changes and deletions.",
    )

    class Meta:
        model = ServiceAPIKey
        fields = ("name", "scope", "expiry_date", "revoked")


@admin.register(ServiceAPIKey)
class ServiceAPIKeyAdmin(APIKeyModelAdmin):
    """The key is shown once, in the message after saving; only its prefix is kept readable."""

    form = ServiceAPIKeyForm
    list_display = (*APIKeyModelAdmin.list_display, "scope")
    list_filter = (*APIKeyModelAdmin.list_filter, "scope")
