"""The audit trail of writes: one `write_audited` event per accepted write, staged on the write's
own unit of work, so the trail and the change commit together or not at all."""

from __future__ import annotations

from vuonminh.shared.auth import Caller
from vuonminh.shared.events.access import WriteAudited
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork


def audit_write(uow: UnitOfWork, caller: Caller, action: str, *, target: tuple[str, str], outcome: str) -> None:
    """Stages the audit event of `action` by `caller` on `target` (type, id), e.g. ("product", sku)."""
    target_type, target_id = target
    uow.publish(
        WriteAudited(
            service=uow.service,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome,
            actor_role=caller.role.value,
            actor_subject=caller.subject,
            credential_id=caller.credential_id,
            at=utc_now(),
        )
    )
