from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from tenantry.kit.schemas import ReadSchema, Schema

Body = Annotated[str, Field(min_length=1, max_length=10_000)]


class CommentCreate(Schema):
    body: Body


class CommentRead(ReadSchema):
    id: uuid.UUID
    task_id: uuid.UUID
    author_id: uuid.UUID
    body: str
    created_at: datetime
