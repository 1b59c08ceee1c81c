from __future__ import annotations

from tenantry.notifications.templates import EmailKind, render


def test_subjects_match_the_contract() -> None:
    assert render(EmailKind.WELCOME).subject == "Welcome to Tenantry — verify your email"
    assert render(EmailKind.PASSWORD_RESET).subject == "Reset your Tenantry password"
    assert render(EmailKind.REPORT_READY).subject == "Your report is ready"
    assert (
        render(EmailKind.INVITATION, tenant_name="Acme").subject == "You are invited to join Acme"
    )


def test_text_carries_token_and_link_html_is_escaped() -> None:
    email = render(
        EmailKind.WELCOME,
        name="<script>x</script>",
        token="tok123",
        link="http://localhost:8000/verify-email?token=tok123",
    )
    assert "tok123" in email.text
    assert "?token=tok123" in email.text
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
