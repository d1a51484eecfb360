"""SessionService: the same cached lookups and refresh as /api/v1/sessions/..."""

from questdb.cache.records import Payload
from questdb.grpc.messages import by_content, from_body, from_payload
from questdb.grpc.registry import RpcService
from questdb.v1 import sessions_pb2, sessions_pb2_grpc
from sessions_app import services
from sessions_app.api import lookups
from sessions_app.api.serializers import SessionSerializer

_serialized_session = by_content(lambda body, _etag: from_body(body, sessions_pb2.Session()))


def _session(payload: Payload) -> sessions_pb2.Session:
    return sessions_pb2.Session.FromString(_serialized_session(payload.body))


class SessionServicer(sessions_pb2_grpc.SessionServiceServicer):
    def GetSession(self, request, context):
        return sessions_pb2.GetSessionResponse(session=_session(lookups.session_payload(session_id=request.id)))

    def GetSessionByToken(self, request, context):
        body = lookups.session_payload_by_token(token=request.token)
        return sessions_pb2.GetSessionByTokenResponse(session=_session(body))

    def RefreshSession(self, request, context):
        payload = SessionSerializer(services.session_refresh(session_id=request.id)).data
        return sessions_pb2.RefreshSessionResponse(session=from_payload(payload, sessions_pb2.Session()))


SERVICE = RpcService(
    name="questdb.v1.SessionService",
    servicer=SessionServicer(),
    add_to_server=sessions_pb2_grpc.add_SessionServiceServicer_to_server,
    writes=frozenset({"RefreshSession"}),
)
