"""Email templates: subject, plain text (always carrying the token) and HTML."""

from __future__ import annotations

import html
from dataclasses import dataclass
from enum import StrEnum
from string import Template
from typing import Any


class EmailKind(StrEnum):
    WELCOME = "welcome"
    INVITATION = "invitation"
    PASSWORD_RESET = "password_reset"  # noqa: S105  (a kind of email, not a secret)
    REPORT_READY = "report_ready"
    WEBHOOK_DISABLED = "webhook_disabled"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


_SUBJECTS = {
    EmailKind.WELCOME: "Welcome to Tenantry — verify your email",
    EmailKind.INVITATION: "You are invited to join ${tenant_name}",
    EmailKind.PASSWORD_RESET: "Reset your Tenantry password",
    EmailKind.REPORT_READY: "Your report is ready",
    EmailKind.WEBHOOK_DISABLED: "A webhook endpoint of ${tenant_name} was disabled",
}

_TEXT = {
    EmailKind.WELCOME: (
        "Hello ${name},\n\nWelcome to Tenantry. Verify your email address here:\n"
        "${link}\n\nOr send this token to POST /api/v1/auth/verify-email:\n${token}\n"
    ),
    EmailKind.INVITATION: (
        "Hello,\n\n${inviter} invited you to join ${tenant_name} as ${role}.\n"
        "Accept here:\n${link}\n\nOr send this token to POST /api/v1/invitations/accept:\n"
        "${token}\n\nThe invitation expires on ${expires}.\n"
    ),
    EmailKind.PASSWORD_RESET: (
        "Hello ${name},\n\nSomeone asked to reset your Tenantry password. If it was you:\n"
        "${link}\n\nOr send this token to POST /api/v1/auth/password-reset/confirm:\n"
        "${token}\n\nIt expires in ${minutes} minutes. If it was not you, ignore this email.\n"
    ),
    EmailKind.REPORT_READY: ("Hello ${name},\n\nYour ${report_kind} report is ready:\n${link}\n"),
    EmailKind.WEBHOOK_DISABLED: (
        "Hello,\n\nThe webhook endpoint ${url} of ${tenant_name} was disabled and receives"
        " no events until it is enabled again.\n\nWhy: ${reason}.\n\nReview it here (enable"
        ' it with PATCH {"status": "enabled"}; nothing missed is replayed):\n${link}\n'
    ),
}


def render(kind: EmailKind, **context: Any) -> RenderedEmail:
    """Render all three parts; HTML escapes every value, the text part keeps it verbatim."""
    values = {key: str(value) for key, value in context.items()}
    subject = Template(_SUBJECTS[kind]).safe_substitute(values)
    text = Template(_TEXT[kind]).safe_substitute(values)
    escaped = {key: html.escape(value) for key, value in values.items()}
    body = Template(_TEXT[kind]).safe_substitute(escaped)
    link = escaped.get("link")
    paragraphs = "".join(
        f'<p><a href="{link}">{link}</a></p>' if link and p.strip() == link else f"<p>{p}</p>"
        for p in body.split("\n\n")
    )
    page = (
        f'<!doctype html><html><body style="font-family:sans-serif">'
        f"<h1>{html.escape(subject)}</h1>{paragraphs.replace(chr(10), '<br>')}</body></html>"
    )
    return RenderedEmail(subject=subject, text=text, html=page)
