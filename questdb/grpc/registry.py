"""What each app serves over gRPC: its servicer, how to add it to a server, and which methods write."""

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module

APPS_WITH_RPC = ("accounts", "characters", "sessions_app")
PACKAGE = "questdb.v1"


@dataclass(frozen=True)
class RpcService:
    name: str  # the service's full name, e.g. questdb.v1.UserService
    servicer: object
    add_to_server: Callable  # the generated add_<Service>Servicer_to_server
    writes: frozenset[str] = field(default_factory=frozenset)  # methods that need a `write` key

    def method_path(self, method: str) -> str:
        return f"/{self.name}/{method}"


def services() -> list[RpcService]:
    """Every app's `<app>/rpc.py` SERVICE."""
    return [import_module(f"{app}.rpc").SERVICE for app in APPS_WITH_RPC]
