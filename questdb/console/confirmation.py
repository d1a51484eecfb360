"""One confirmation page for every staff action that changes data (and a stronger one when it cannot be undone)."""

from django.contrib.admin import helpers
from django.template.response import TemplateResponse


def confirmation(
    request,
    model_admin,
    *,
    title: str,
    lines: list[str],
    button: str,
    objects=(),
    action: str | None = None,
    irreversible: bool = False,
    fields=None,
):
    """The page asking staff to confirm; its form posts back with `confirmed=yes` (and `action` for list actions)."""
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "lines": lines,
        "button": button,
        "objects": list(objects),
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "irreversible": irreversible,
        "fields": fields,
        "opts": opts,
        "app_label": opts.app_label,
    }
    return TemplateResponse(request, "console/confirm.html", context)


def confirmed(request) -> bool:
    return request.method == "POST" and request.POST.get("confirmed") == "yes"
