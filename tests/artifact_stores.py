"""Artifact stores for tests: the audit journal's databases (SQLite, and the session's PostgreSQL
as the application role, each with two tenants of the test's own) joined to a real local
directory or a bucket on moto's S3 server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from audit_db import Journal, journal
from moto_s3 import CREDENTIALS, moto_server, new_bucket

from plan2flow.memory.artifacts import ArtifactStore
from plan2flow.memory.blobs import BlobStore
from plan2flow.memory.blobs_local import LocalBlobStore
from plan2flow.memory.blobs_s3 import S3BlobStore
from plan2flow.memory.keyring import Keyring

KEYRING = Keyring([("k1", os.urandom(32))])


def store_of(journal: Journal, blobs: BlobStore, keys: Keyring = KEYRING) -> ArtifactStore:
    """The store of tenant ``acme`` of the journal's database."""
    return ArtifactStore(journal.database, blobs, tenant=journal.acme, keys=keys)


def s3_blobs(endpoint: str) -> S3BlobStore:
    return S3BlobStore(
        f"s3://{new_bucket(endpoint)}/memory/blobs", endpoint_url=endpoint, **CREDENTIALS
    )


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def store(journal: Journal) -> ArtifactStore:
    """Tenant ``acme``'s store: the database joined to a local directory of blobs (the
    default location, ``$PLAN2FLOW_HOME/blobs``, which the command line finds too)."""
    return store_of(journal, LocalBlobStore(journal.home / "blobs"))


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def any_store(request: pytest.FixtureRequest, journal: Journal) -> ArtifactStore:
    """Tenant ``acme``'s store on a local directory or on a bucket of moto's S3 server."""
    if request.param == "local":
        return store_of(journal, LocalBlobStore(journal.home / "blobs"))
    return store_of(journal, s3_blobs(request.getfixturevalue("s3_endpoint")))


__all__ = ["any_store", "journal", "s3_endpoint", "store", "store_of"]
