from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve questdb's gRPC services (GRPC_LISTEN_ADDR:GRPC_PORT) until SIGTERM."

    def handle(self, *args, **options):
        from questdb.grpc.server import serve

        serve()
