"""Development mail as people read it: beside every `.eml` the sink writes a `.txt`
with the headers that matter, the token on a line of its own and the decoded text part.

The `.eml` is the real message (quoted-printable, multipart); nobody can copy a token
out of it with `grep`. The `.txt` is for `cat`, `grep` and `tenantry mail-token`.
"""

from __future__ import annotations

import re
import time
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path

_TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_\-.~]+)")
TOKEN_LABEL = "Token:"  # noqa: S105  (a heading in the .txt, not a secret)


def _text_part(message: Message) -> str:
    if isinstance(message, EmailMessage):
        part = message.get_body(preferencelist=("plain",))
        if part is not None:
            return str(part.get_content())
    payload = message.get_payload(decode=True)
    return payload.decode(errors="replace") if isinstance(payload, bytes) else ""


def token_of(text: str) -> str | None:
    """The token carried by a message's link (`…?token=…`), if it has one."""
    match = _TOKEN.search(text)
    return match.group(1) if match else None


def readable(message: Message) -> str:
    text = _text_part(message)
    lines = [f"{name}: {message[name]}" for name in ("From", "To", "Subject", "Date")]
    token = token_of(text)
    if token:
        lines += ["", TOKEN_LABEL, token]
    lines += ["", "-" * 72, text.rstrip(), ""]
    return "\n".join(lines)


def readable_path(eml: Path) -> Path:
    return eml.with_suffix(".txt")


def summary(eml: Path) -> str:
    """`mail: <subject> → <to> (<path of the .txt>)` for the dev console."""
    try:
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    except OSError:
        return f"mail: {eml}"
    return f"mail: {message['Subject']} → {message['To']}  ({readable_path(eml)})"


def find_token(
    directory: Path, to: str, *, subject: str = "", wait: float = 0.0
) -> tuple[str, Path] | None:
    """The token of the newest message to `to` (whose subject contains `subject`),
    waiting up to `wait` seconds for one to arrive."""
    deadline = time.monotonic() + wait
    wanted_to = to.strip().lower()
    while True:
        candidates: list[tuple[int, str, Path]] = []
        for path in directory.glob("*.txt") if directory.is_dir() else []:
            try:
                content = path.read_text()
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            headers = dict(
                line.split(": ", 1)
                for line in content.split("\n\n", 1)[0].splitlines()
                if ": " in line
            )
            if wanted_to not in headers.get("To", "").lower():
                continue
            if subject.lower() not in headers.get("Subject", "").lower():
                continue
            lines = content.splitlines()
            if TOKEN_LABEL in lines:
                index = lines.index(TOKEN_LABEL) + 1
                if index < len(lines) and lines[index].strip():
                    candidates.append((mtime, lines[index].strip(), path))
        if candidates:
            _, token, path = max(candidates)
            return token, path
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
