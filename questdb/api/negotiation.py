from rest_framework.negotiation import DefaultContentNegotiation


class JSONOnly(DefaultContentNegotiation):
    """The API speaks JSON only: skip parsing Accept headers to choose among one renderer.

    Views with several renderers (the OpenAPI schema and its docs) keep DRF's negotiation.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1:
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
