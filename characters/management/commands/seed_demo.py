"""Demo data for a newcomer: users, their characters and sessions, created through the domain services."""

import random
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.models import User
from characters import services as character_services
from characters import shapes
from sessions_app.models import Session

DEMO_DOMAIN = "demo.questdb.invalid"
AGENTS = ["QuestClient/2.3 (Windows NT 10.0)", "QuestClient/2.3 (Macintosh)", "QuestLauncher/1.9 (X11; Linux)"]


class Command(BaseCommand):
    help = "Create demo users, characters and sessions (idempotent; --reset replaces the earlier demo data)."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=25, help="How many demo users (default 25).")
        parser.add_argument("--reset", action="store_true", help="Delete the earlier demo data first.")
        parser.add_argument("--seed", type=int, default=7, help="Random seed, so two runs make the same data.")

    def handle(self, *args, users: int, reset: bool, seed: int, **options):
        demo = User.objects.filter(email__endswith=f"@{DEMO_DOMAIN}")
        if reset:
            deleted = demo.count()
            for user in demo:
                user.delete()
            self.stdout.write(f"Deleted {deleted} demo user(s) with their characters and sessions.")
        rng = random.Random(seed)
        created = 0
        for number in tqdm(range(1, users + 1), desc="seeding demo users", unit="user", file=self.stderr):
            created += self._user(number, rng)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {created} new user(s), {users} in all."))

    @transaction.atomic
    def _user(self, number: int, rng: random.Random) -> int:
        username = f"demo_player{number:03d}"
        user, created = User.objects.get_or_create(
            email=f"{username}@{DEMO_DOMAIN}", defaults={"username": username, "name": f"Demo Player {number}"}
        )
        if not created:
            return 0  # idempotent: an existing demo user keeps what it has
        for index in range(rng.randint(1, settings.MAX_CHARACTERS_PER_USER)):
            stats = {**shapes.default_stats(), "level": rng.randint(1, 80), "strength": rng.randint(5, 60)}
            position = {"map_id": rng.randint(1, 12), "x": rng.uniform(-500, 500), "y": rng.uniform(-500, 500), "z": 0}
            inventory = [
                {"slot": slot, "item_id": rng.randint(100, 999), "quantity": rng.randint(1, 20)}
                for slot in range(rng.randint(0, 6))
            ]
            character_services.character_create(
                user_id=user.pk,
                name=f"Hero{number:03d}_{index}",
                money=rng.randint(0, 5_000_000),
                stats=stats,
                position=position,
                inventory=inventory,
                skills=[{"skill_id": skill, "level": rng.randint(1, 10)} for skill in range(rng.randint(0, 4))],
            )
        for _ in range(rng.randint(0, 3)):
            Session.objects.create(
                user=user,
                token=secrets.token_urlsafe(32),
                expires_at=timezone.now() + timedelta(hours=rng.randint(-48, 168)),
                ip_address=f"203.0.113.{rng.randint(1, 254)}",
                user_agent=rng.choice(AGENTS),
            )
        return 1
