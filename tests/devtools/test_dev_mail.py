"""Dev mail a person can use: a decoded `.txt` beside each `.eml` with the token on a
line of its own, `tenantry mail-token` to read it back, and pages behind the links."""

from __future__ import annotations

import quopri
from pathlib import Path

import httpx

from tenantry.config import Environment, Settings
from tenantry.db import Database
from tenantry.devtools.mail import find_token
from tenantry.main import create_app
from tenantry.notifications.delivery import Outcome, email_delivery
from tenantry.notifications.outbox import queue_email
from tenantry.notifications.templates import EmailKind

# Long enough that quoted-printable wraps the link: `grep` on the .eml would miss it.
TOKEN = "Zq0-" + "x9_Y" * 20


async def _deliver_welcome(db: Database, settings: Settings, sink: Path, to: str) -> None:
    async with db.session_scope() as session:
        row = queue_email(
            session,
            EmailKind.WELCOME,
            to=to,
            name="Ada Ünïcode",
            token=TOKEN,
            link=f"http://127.0.0.1:8000/verify-email?token={TOKEN}",
        )
    dev = settings.model_copy(update={"smtp_host": None, "mail_sink_dir": str(sink)})
    assert (await email_delivery.deliver(db, dev, row.id)).outcome is Outcome.SENT


async def test_each_message_has_a_readable_copy_with_the_token_on_its_own_line(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    await _deliver_welcome(db, settings, tmp_path, "ada@example.com")
    (eml,) = tmp_path.glob("*.eml")  # noqa: ASYNC240
    txt = eml.with_suffix(".txt")
    raw = eml.read_text()
    assert TOKEN not in raw  # the real message is quoted-printable…
    assert TOKEN in quopri.decodestring(raw.encode()).decode(errors="replace")
    lines = txt.read_text().splitlines()  # …its readable copy is not
    assert "To: ada@example.com" in lines
    assert "Subject: Welcome to Tenantry — verify your email" in lines
    assert lines[lines.index("Token:") + 1] == TOKEN
    assert "Hello Ada Ünïcode," in lines


async def test_mail_token_finds_the_newest_message_to_an_address(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    await _deliver_welcome(db, settings, tmp_path, "ada@example.com")
    assert find_token(tmp_path, "ADA@example.com") == (TOKEN, next(tmp_path.glob("*.txt")))  # noqa: ASYNC240
    assert find_token(tmp_path, "ada@example.com", subject="invited") is None
    assert find_token(tmp_path, "bob@example.com") is None


async def _get(settings: Settings, path: str) -> httpx.Response:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path)


async def test_email_links_open_a_page_that_posts_the_token(settings: Settings) -> None:
    for path, call in (
        ("/verify-email", "/auth/verify-email"),
        ("/invitations/accept", "/invitations/accept"),
        ("/reset-password", "/auth/password-reset/confirm"),
    ):
        response = await _get(settings, f"{path}?token={TOKEN}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert TOKEN in response.text
        assert f'"{call}"' in response.text


async def test_a_hostile_token_is_escaped(settings: Settings) -> None:
    response = await _get(settings, "/verify-email?token=%3C/script%3E%3Cscript%3Ealert(1)")
    assert "</script><script>alert(1)" not in response.text


async def test_production_has_no_dev_pages(settings: Settings) -> None:
    prod = settings.model_copy(update={"environment": Environment.PRODUCTION})
    response = await _get(prod, f"/verify-email?token={TOKEN}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
