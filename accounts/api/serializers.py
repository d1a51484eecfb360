from rest_framework import serializers

from accounts.models import User

USER_FIELDS = [
    "id",
    "username",
    "display_username",
    "name",
    "email",
    "email_verified",
    "image",
    "role",
    "created_at",
    "updated_at",
]


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = USER_FIELDS
        read_only_fields = USER_FIELDS
