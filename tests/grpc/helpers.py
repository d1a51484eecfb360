"""Reading gRPC answers in tests: error codes from trailing metadata, and proto-vs-REST comparison."""

import re
import urllib.request
from datetime import UTC, datetime

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def failure(call, *args, **kwargs) -> grpc.RpcError:
    """The RpcError a call fails with (the test fails if it succeeds)."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded")


def error_code(error: grpc.RpcError) -> str:
    return dict(error.trailing_metadata())["questdb-error-code"]


def error_field(error: grpc.RpcError) -> str | None:
    return dict(error.trailing_metadata()).get("questdb-error-field")


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


def _timestamp(value: Timestamp | None) -> datetime | None:
    return value.ToDatetime(tzinfo=UTC) if value is not None else None


def _rest_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def assert_same(message: Message, payload: dict, *, renames: dict | None = None, skip: tuple = ()) -> None:
    """Every key of the REST payload equals the message's field of the same (or renamed) name, recursively."""
    renames = renames or {}
    fields = message.DESCRIPTOR.fields_by_name
    for key, rest_value in payload.items():
        name = renames.get(key, key)
        assert name in fields, f"the proto has no field for REST's {key!r}"
        field = fields[name]
        has = message.HasField(name) if field.has_presence else True
        value = getattr(message, name) if has else None
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
            assert _timestamp(value) == _rest_time(rest_value), key
        elif field.is_repeated:
            assert len(value) == len(rest_value), key
            for item, rest_item in zip(value, rest_value, strict=True):
                assert_same(item, rest_item)
        elif field.message_type is not None:
            assert (value is None) == (rest_value is None), key
            if rest_value is not None:
                assert_same(value, rest_value)
        else:
            assert value == rest_value, f"{key}: gRPC {value!r} != REST {rest_value!r}"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total
