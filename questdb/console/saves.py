"""Saves the domain refuses come back as form errors: input kept, nothing logged, no success message.

Django's admin validates the form, then calls `save_model`, then logs the change and says "changed
successfully"; it has no way for `save_model` to say no. The forms check what they can beforehand
(shapes, names, pending deletion), but some refusals are only known when the service runs (the
per-user character limit, a name taken meanwhile). `save_model` lets the service's DomainError
propagate: the admin's transaction rolls back, and the view runs once more with the refusal added
to the form, which re-renders with the typed input and the error beside its field or at the top.
"""

from django.db import transaction

from questdb.errors import DomainError

_REFUSAL = "_console_refusal"


class RefusedSaveMixin:
    """For ModelAdmins whose `save_model` calls a domain service that may raise DomainError."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            with transaction.atomic():
                return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as refusal:
            setattr(request, _REFUSAL, refusal)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, _REFUSAL, None)
        if refusal is None:
            return form

        def clean(self):
            cleaned = form.clean(self)
            errors = refusal.errors or [refusal]
            for error in errors:
                self.add_error(error.field if error.field in self.fields else None, error.message)
            return cleaned

        return type(form.__name__, (form,), {"clean": clean})
