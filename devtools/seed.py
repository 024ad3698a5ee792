"""`make seed N=1000`: realistic users in the running stack, through the service's code.

Each user is validated by the API's own schema (UserCreate) and created by UserService,
so its welcome-email job is written to the outbox in the same transaction and handed to
RQ after the commit, exactly as a POST does: the worker then sends N welcome emails (to
the development inbox under `make run`).
"""

from __future__ import annotations

import random
import secrets
import unicodedata

from app.factory import build_services
from app.features.users.schemas import UserCreate
from app.features.users.service import UserService
from app.foundation.config import Settings

FIRST_NAMES = (
    "Ada",
    "Alan",
    "Amara",
    "Ana",
    "Ángel",
    "Anouk",
    "Aiko",
    "Björn",
    "Carmen",
    "Chen",
    "Chioma",
    "Dmitri",
    "Elif",
    "Emma",
    "Farah",
    "Fatima",
    "Giulia",
    "Hana",
    "Hugo",
    "Ines",
    "Isaac",
    "Jonas",
    "Kwame",
    "Lars",
    "Leila",
    "Liam",
    "Lucía",
    "Mateo",
    "Mei",
    "Nadia",
    "Noah",
    "Olga",
    "Omar",
    "Priya",
    "Rafael",
    "Rania",
    "Ravi",
    "Sakura",
    "Sofia",
    "Søren",
    "Tariq",
    "Thandiwe",
    "Yusuf",
    "Zoë",
)
LAST_NAMES = (
    "Abe",
    "Adeyemi",
    "Andersson",
    "Bauer",
    "Brown",
    "Costa",
    "Dubois",
    "Eze",
    "García",
    "Gupta",
    "Haddad",
    "Hansen",
    "Ivanova",
    "Jansen",
    "Kaya",
    "Kim",
    "Kowalski",
    "Lee",
    "López",
    "Martin",
    "Müller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "O'Brien",
    "Okafor",
    "Patel",
    "Perez",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Virtanen",
    "Wang",
    "Williams",
    "Yilmaz",
    "Zhang",
)
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
# One commit per batch: the service adds each user to the caller's transaction, as a
# request does, and the outbox hands the batch's jobs to RQ after each commit.
BATCH = 100


def _ascii(text: str) -> str:
    """A name as an email local part: accents dropped, letters only."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def fake_user(rng: random.Random, run: str, number: int) -> UserCreate:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    # The run's token and the number keep addresses unique across repeated seeds.
    email = f"{_ascii(first)}.{_ascii(last)}.{run}{number}@{rng.choice(DOMAINS)}"
    return UserCreate.model_validate({"email": email, "name": f"{first} {last}"})


def seed(settings: Settings, count: int, *, rng: random.Random | None = None) -> int:
    """Create `count` users; returns how many were created."""
    rng = rng or random.Random()  # noqa: S311 - sample data, not secrets
    run = secrets.token_hex(2)
    services = build_services(settings)
    created = 0
    try:
        while created < count:
            with services.database.sessionmaker() as session:
                users = UserService(session, services.outbox)
                size = min(BATCH, count - created)
                for number in range(created, created + size):
                    user = fake_user(rng, run, number)
                    users.create(email=user.email, name=user.name)
                session.commit()
            created += size
    finally:
        services.close()
    return created
