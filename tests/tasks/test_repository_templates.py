"""The tasks list is built from templates, one per combination of filters: a filter
added to `TaskListQuery` but not to the template would silently not filter."""

from __future__ import annotations

import uuid

from tenantry.tasks.repository import _in_project
from tenantry.tasks.schemas import TaskListQuery

PAGING = {"sort", "limit", "cursor"}
SAMPLE = {"status": "todo", "assignee_id": str(uuid.uuid4()), "q": "x"}


def test_every_filter_of_the_query_changes_the_statement() -> None:
    filters = set(TaskListQuery.model_fields) - PAGING
    assert filters == set(SAMPLE), "a new filter: add it to _in_project and list_rows"
    bare = str(_in_project(False, False, False))
    for name in filters:
        query = TaskListQuery.model_validate({name: SAMPLE[name]})
        flags = (query.status is not None, query.assignee_id is not None, bool(query.q))
        assert str(_in_project(*flags)) != bare, name


def test_a_violated_constraint_is_named_as_the_schema_names_it() -> None:
    """Citus raises a worker's violation against a shard: the shard id is dropped, and
    a name found only in the message is found there."""
    import asyncpg

    from tenantry.db import violated_constraint

    on_a_shard = asyncpg.ForeignKeyViolationError(
        'insert or update on table "tasks_102008" violates foreign key constraint '
        '"fk_tasks_project_102008"'
    )
    assert violated_constraint(on_a_shard) == "fk_tasks_project"
    plain = asyncpg.ForeignKeyViolationError("violates foreign key")
    plain.constraint_name = "fk_tasks_assignee_membership"  # type: ignore[attr-defined]
    assert violated_constraint(plain) == "fk_tasks_assignee_membership"
    assert violated_constraint(ValueError("nothing here")) == ""
