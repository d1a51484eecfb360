"""questdb over gRPC: the game servers' own protocol, served from the same code as the REST API.

`manage.py grpcserver` runs `server.serve`; every RPC passes through `interceptor.QuestdbInterceptor`
(request id, API key and scope, throttle, routing scope and consistency token, database connections,
error mapping, log line and metrics); the servicers are thin and live beside each app (`<app>/rpc.py`).
"""
