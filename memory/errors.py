"""Project memory's errors.

::

    MemoryStoreError
    ├── TenantError            no tenant, or one that is not a DNS label, or unknown
    ├── DatabaseUnavailable    the metadata database cannot be reached
    ├── SchemaOutOfDate        the database is not at the newest migration (`plan2flow db upgrade`)
    ├── ArtifactNotFound       no artifact with that id (in this tenant)
    ├── BlobCorrupted          a blob whose bytes no longer hash to its digest
    ├── UnsafeArchive          a directory artifact with a member that would land outside it
    ├── BlobNotFound           no blob with that digest in the tenant's store (or not a digest)
    ├── BlobStoreUnavailable   the blob store cannot be reached, read or written
    ├── KeyUnavailable         a master key named by a stored value is not configured
    ├── KeysFileError          the master keys cannot be loaded: malformed, or open to others
    ├── DecryptionFailed       a ciphertext that fails authentication (tampered, another tenant's)
    ├── AuditTampered          the audit hash chain is broken (``entry``: the first bad one)
    ├── BudgetError            a budget or a price that cannot be: negative, unknown period (P2F803)
    └── BudgetSpent            a plan's or tenant's budget for the period is spent (P2F801/802)
"""

from __future__ import annotations


class MemoryStoreError(Exception):
    """The root of project memory's errors; ``exit_status`` is what the command line exits with."""

    exit_status = 2


class TenantError(MemoryStoreError, ValueError):
    """No tenant was bound, or the tenant is not a DNS label, or it does not exist."""


class DatabaseUnavailable(MemoryStoreError):
    """The metadata database cannot be reached."""

    exit_status = 3


class SchemaOutOfDate(MemoryStoreError):
    """The database is behind the newest migration; ``plan2flow db upgrade`` brings it forward."""

    exit_status = 4


class ArtifactNotFound(MemoryStoreError, LookupError):
    """No artifact with that id is visible to the tenant."""


class BlobCorrupted(MemoryStoreError):
    """A blob's bytes do not hash to the digest it is stored under."""

    exit_status = 5


class UnsafeArchive(MemoryStoreError):
    """A directory artifact's archive has a member that would land outside its destination (an
    absolute path, ``..``, a link out of it, a device): refused, nothing is left behind."""

    exit_status = 5


class BlobNotFound(MemoryStoreError, LookupError):
    """No blob with that digest is stored for the tenant, or the name is not a sha256 digest."""


class BlobStoreUnavailable(MemoryStoreError):
    """The blob store cannot be reached, read or written: endpoint down, no access, disk full."""

    exit_status = 3


class KeyUnavailable(MemoryStoreError):
    """A value was encrypted with a master key id that is not configured here."""

    exit_status = 6


class KeysFileError(MemoryStoreError):
    """The master keys cannot be loaded: a malformed line, or a file open to group or others."""

    exit_status = 6


class DecryptionFailed(MemoryStoreError):
    """A ciphertext failed authentication: tampered, truncated, or bound to another tenant."""

    exit_status = 6


class AuditTampered(MemoryStoreError):
    """The audit hash chain does not verify; ``entry`` is the first entry that breaks it."""

    exit_status = 1

    def __init__(self, message: str, *, tenant: str, entry: int) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.entry = entry


class BudgetError(MemoryStoreError):
    """A budget or a compute price that cannot be (negative, not a number, an unknown period)."""

    code = "P2F803"


class BudgetSpent(MemoryStoreError):
    """A plan's or a tenant's budget for the current period is spent: a run is refused before it
    starts (``P2F801``), a task or a model call of a running run is not started (``P2F802``)."""

    exit_status = 1

    def __init__(
        self, message: str, *, code: str, scope: str, name: str, spent: float, limit: float
    ) -> None:
        super().__init__(message)
        self.code = code
        self.scope = scope
        self.name = name
        self.spent = spent
        self.limit = limit
