"""Every table model, imported here so metadata and Alembic see all of them."""

from tenantry.models.api_key import ApiKey
from tenantry.models.audit import AuditEvent
from tenantry.models.auth_session import AuthSession
from tenantry.models.base import GLOBAL_TABLES, IDModel, TenantScoped, Timestamped, metadata
from tenantry.models.comment import Comment
from tenantry.models.invitation import Invitation, InvitationStatus
from tenantry.models.membership import Membership, Role
from tenantry.models.outbox import EmailOutbox, OutboxStatus
from tenantry.models.project import Project
from tenantry.models.report import (
    ApiUsageDaily,
    Report,
    ReportChunk,
    ReportFormat,
    ReportKind,
    ReportStatus,
)
from tenantry.models.task import Task, TaskStatus
from tenantry.models.tenant import Plan, Tenant, TenantStatus
from tenantry.models.user import User
from tenantry.models.webhook import (
    DeliveryStatus,
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ = [
    "GLOBAL_TABLES",
    "ApiKey",
    "ApiUsageDaily",
    "AuditEvent",
    "AuthSession",
    "Comment",
    "DeliveryStatus",
    "EmailOutbox",
    "EndpointStatus",
    "IDModel",
    "Invitation",
    "InvitationStatus",
    "Membership",
    "OutboxStatus",
    "Plan",
    "Project",
    "Report",
    "ReportChunk",
    "ReportFormat",
    "ReportKind",
    "ReportStatus",
    "Role",
    "Task",
    "TaskStatus",
    "Tenant",
    "TenantScoped",
    "TenantStatus",
    "Timestamped",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "metadata",
]
