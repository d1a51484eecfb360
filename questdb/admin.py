from django import forms
from django.contrib import admin
from django.db.models.constants import LOOKUP_SEP
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


class FilterLookupsOnly:
    """A ModelAdmin mixin: changelist URLs filter only on the fields `list_filter` offers.

    Django allows `?<any column>__<any lookup>=` on a changelist, so a staff member who may view
    sessions could ask `?token__startswith=ab` and read the count: an oracle for every secret
    column (session tokens, API key hashes). Refused lookups answer 400.
    """

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        field = lookup.split(LOOKUP_SEP, 1)[0]
        return field in self._filterable_fields(request) and super().lookup_allowed(lookup, value, request)

    def _filterable_fields(self, request) -> set[str]:
        names = set()
        offered = self.get_list_filter(request) if request is not None else self.list_filter
        for entry in [*offered, *([self.date_hierarchy] if self.date_hierarchy else [])]:
            if isinstance(entry, str | tuple):
                names.add(entry if isinstance(entry, str) else entry[0])
            elif getattr(entry, "parameter_name", None):  # a SimpleListFilter: its own parameter
                names.add(entry.parameter_name)
        return {name.split(LOOKUP_SEP, 1)[0] for name in names}


@admin.register(ServiceAPIKey)
class ServiceAPIKeyAdmin(FilterLookupsOnly, APIKeyModelAdmin):
    """The key is shown once, in the message after saving; only its prefix is kept readable."""

    form = ServiceAPIKeyForm
    list_display = (*APIKeyModelAdmin.list_display, "scope")
    list_filter = (*APIKeyModelAdmin.list_filter, "scope")
