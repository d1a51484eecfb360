from django.core.management.base import BaseCommand

from questdb.grpc.supervisor import Supervisor


class Command(BaseCommand):
    help = "Serve questdb's gRPC services (GRPC_LISTEN_ADDR:GRPC_PORT) until SIGTERM."

    def handle(self, *args, **options):
        raise SystemExit(Supervisor().run())
