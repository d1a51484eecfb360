"""UserService: the same cached lookups as GET /api/v1/users/..."""

from accounts.api import lookups
from questdb.cache.records import Payload
from questdb.grpc.messages import Encoded, by_content, from_body
from questdb.grpc.registry import RpcService
from questdb.v1 import users_pb2, users_pb2_grpc

# A cached user as an encoded GetUserResponse: `user` is field 1 of all three responses, so the same bytes
# answer each of them.
_encoded_user = by_content(lambda body, _etag: users_pb2.GetUserResponse(user=from_body(body, users_pb2.User())))
for _response in (users_pb2.GetUserResponse, users_pb2.GetUserByUsernameResponse, users_pb2.GetUserByEmailResponse):
    assert _response.DESCRIPTOR.fields_by_name["user"].number == 1


def _user(payload: Payload) -> Encoded:
    return Encoded(_encoded_user(payload.body))


class UserServicer(users_pb2_grpc.UserServiceServicer):
    def GetUser(self, request, context):
        return _user(lookups.user_payload(user_id=request.id))

    def GetUserByUsername(self, request, context):
        return _user(lookups.user_payload_by_username(username=request.username))

    def GetUserByEmail(self, request, context):
        return _user(lookups.user_payload_by_email(email=request.email))


SERVICE = RpcService(
    name="questdb.v1.UserService",
    servicer=UserServicer(),
    add_to_server=users_pb2_grpc.add_UserServiceServicer_to_server,
)
