"""The audit log: append-only, tamper-evident (RFC 6962 Merkle tree, keyed entry MACs, signed
tree heads), verifiable by anyone holding the audit public key.

    log = AuditLog(engine, load_audit_keys(settings), options=...)
    seq = log.append(EventName.VAULT_CREDENTIAL_ADDED, actor="user:42", subject=cred_id,
                     details={"venue": "binance"})
    report = verify(engine, keys, against=Path("checkpoints.jsonl"))
"""

from tradeguard.audit.entry import AuditInputError, Entry
from tradeguard.audit.heads import CheckpointError, TreeHead
from tradeguard.audit.keys import AUDIT_KEY, AuditKeys, load_audit_keys
from tradeguard.audit.log import AuditLog, AuditOptions, AuditWriteError
from tradeguard.audit.verify import Finding, VerifyReport, verify

__all__ = [
    "AUDIT_KEY",
    "AuditInputError",
    "AuditKeys",
    "AuditLog",
    "AuditOptions",
    "AuditWriteError",
    "CheckpointError",
    "Entry",
    "Finding",
    "TreeHead",
    "VerifyReport",
    "load_audit_keys",
    "verify",
]
