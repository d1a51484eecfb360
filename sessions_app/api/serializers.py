from rest_framework import serializers

from accounts.api.serializers import UserSerializer
from questdb.api.representation import iso
from sessions_app.models import Session

SESSION_FIELDS = ["id", "user", "expires_at", "ip_address", "user_agent", "impersonated_by", "created_at", "updated_at"]


class SessionSerializer(serializers.ModelSerializer):
    """The token is deliberately absent: it is a bearer secret."""

    user = UserSerializer(read_only=True)

    class Meta:
        model = Session
        fields = SESSION_FIELDS
        read_only_fields = SESSION_FIELDS

    def to_representation(self, session: Session) -> dict:
        return {
            "id": str(session.id),
            "user": UserSerializer().to_representation(session.user),
            "expires_at": iso(session.expires_at),
            "ip_address": session.ip_address,
            "user_agent": session.user_agent,
            "impersonated_by": str(session.impersonated_by) if session.impersonated_by else None,
            "created_at": iso(session.created_at),
            "updated_at": iso(session.updated_at),
        }


class SessionLookupRequest(serializers.Serializer):
    token = serializers.CharField(max_length=255, trim_whitespace=False)
