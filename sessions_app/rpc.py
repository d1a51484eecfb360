"""SessionService: the same cached lookups and refresh as /api/v1/sessions/..."""

from questdb.cache.records import Payload
from questdb.grpc.messages import Encoded, by_content, from_body, from_payload
from questdb.grpc.registry import RpcService
from questdb.v1 import sessions_pb2, sessions_pb2_grpc
from sessions_app import services
from sessions_app.api import lookups
from sessions_app.api.serializers import SessionSerializer

# A cached session as an encoded GetSessionResponse: `session` is field 1 of both lookup responses, so the
# same bytes answer each of them.
_encoded_session = by_content(
    lambda body, _etag: sessions_pb2.GetSessionResponse(session=from_body(body, sessions_pb2.Session()))
)
for _response in (sessions_pb2.GetSessionResponse, sessions_pb2.GetSessionByTokenResponse):
    assert _response.DESCRIPTOR.fields_by_name["session"].number == 1


def _session(payload: Payload) -> Encoded:
    return Encoded(_encoded_session(payload.body))


class SessionServicer(sessions_pb2_grpc.SessionServiceServicer):
    def GetSession(self, request, context):
        return _session(lookups.session_payload(session_id=request.id))

    def GetSessionByToken(self, request, context):
        return _session(lookups.session_payload_by_token(token=request.token))

    def RefreshSession(self, request, context):
        payload = SessionSerializer(services.session_refresh(session_id=request.id)).data
        return sessions_pb2.RefreshSessionResponse(session=from_payload(payload, sessions_pb2.Session()))


SERVICE = RpcService(
    name="questdb.v1.SessionService",
    servicer=SessionServicer(),
    add_to_server=sessions_pb2_grpc.add_SessionServiceServicer_to_server,
    writes=frozenset({"RefreshSession"}),
)
