"""UserService: the same cached lookups as GET /api/v1/users/..."""

from accounts.api import lookups
from questdb.cache.records import Payload
from questdb.grpc.messages import by_content, from_body
from questdb.grpc.registry import RpcService
from questdb.v1 import users_pb2, users_pb2_grpc

_serialized_user = by_content(lambda body, _etag: from_body(body, users_pb2.User()))


def _user(payload: Payload) -> users_pb2.User:
    return users_pb2.User.FromString(_serialized_user(payload.body))


class UserServicer(users_pb2_grpc.UserServiceServicer):
    def GetUser(self, request, context):
        return users_pb2.GetUserResponse(user=_user(lookups.user_payload(user_id=request.id)))

    def GetUserByUsername(self, request, context):
        return users_pb2.GetUserByUsernameResponse(
            user=_user(lookups.user_payload_by_username(username=request.username))
        )

    def GetUserByEmail(self, request, context):
        return users_pb2.GetUserByEmailResponse(user=_user(lookups.user_payload_by_email(email=request.email)))


SERVICE = RpcService(
    name="questdb.v1.UserService",
    servicer=UserServicer(),
    add_to_server=users_pb2_grpc.add_UserServiceServicer_to_server,
)
