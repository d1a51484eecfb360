from rest_framework import serializers

from accounts.models import User
from questdb.api.representation import iso

USER_FIELDS = [
    "id",
    "username",
    "display_username",
    "name",
    "email",
    "email_verified",
    "image",
    "role",
    "banned",
    "ban_reason",
    "ban_expires",
    "created_at",
    "updated_at",
]


class UserSerializer(serializers.ModelSerializer):
    # Plain text in the schema, not `format: email`: the identity app may store other strings.
    email = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = USER_FIELDS
        read_only_fields = USER_FIELDS

    def to_representation(self, user: User) -> dict:
        return {
            "id": str(user.id),
            "username": user.username,
            "display_username": user.display_username,
            "name": user.name,
            "email": user.email,
            "email_verified": user.email_verified,
            "image": user.image,
            "role": user.role,
            "banned": user.banned is True,  # NULL (never written by better-auth's own calls) reads as not banned
            "ban_reason": user.ban_reason,
            "ban_expires": iso(user.ban_expires),
            "created_at": iso(user.created_at),
            "updated_at": iso(user.updated_at),
        }
