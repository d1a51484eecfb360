from rest_framework import serializers

from accounts.api.serializers import UserSerializer
from sessions_app.models import Session

SESSION_FIELDS = ["id", "user", "expires_at", "ip_address", "user_agent", "created_at", "updated_at"]


class SessionSerializer(serializers.ModelSerializer):
    """The token is deliberately absent: it is a bearer secret."""

    user = UserSerializer(read_only=True)

    class Meta:
        model = Session
        fields = SESSION_FIELDS
        read_only_fields = SESSION_FIELDS


class SessionLookupRequest(serializers.Serializer):
    token = serializers.CharField(max_length=255, trim_whitespace=False)
