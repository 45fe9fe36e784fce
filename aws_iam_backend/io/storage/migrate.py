"""Whole-storage maintenance: copy every document to another storage, re-seal in place.

Run these with the servers stopped (or, for :func:`reseal`, with every server already
configured with the new seal keys): neither takes a snapshot, and :func:`copy_documents`
does not see writes made to the source after it has listed the keys.
"""

from __future__ import annotations

from aws_iam_backend.errors import ConflictError
from aws_iam_backend.io.protocols import ABSENT, Document, JSONDict, Operation, Put, Storage
from aws_iam_backend.io.seal import Seal
from aws_iam_backend.io.storage._sync.ops import update

DEFAULT_BATCH = 500


def _check_batch(batch: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError("batch must be a whole number >= 1")


def copy_documents(source: Storage, target: Storage, *, batch: int = DEFAULT_BATCH) -> int:
    """Copy every document of ``source`` into the empty ``target``; how many were copied.

    Values and ``expires_at`` are kept (versions are the target's own). Writes go in
    batches of ``batch`` documents, each committed atomically with ``expect=ABSENT``.
    Either side may be a :class:`~aws_iam_backend.io.storage._sync.sealed.SealedStorage` or a plain
    storage: the caller wraps them (moving an unsealed store into a sealed one wraps only
    the target). :class:`ValueError` if ``target`` is not empty, or if something else
    writes to it during the copy.
    """
    _check_batch(batch)
    if target.list(""):
        raise ValueError("the target storage is not empty: copy only into an empty storage")
    keys = source.list("")
    copied = 0
    for start in range(0, len(keys), batch):
        documents = [source.read(key) for key in keys[start : start + batch]]
        puts: list[Operation] = [
            Put(d.key, d.value, expect=ABSENT, expires_at=d.expires_at)
            for d in documents
            if d is not None
        ]
        if not puts:
            continue
        try:
            target.commit(puts)
        except ConflictError:
            raise ValueError(
                "the target storage was written to during the copy: stop every server "
                "using it, empty it and copy again"
            ) from None
        copied += len(puts)
    return copied


def reseal(raw: Storage, seal: Seal, *, batch: int = DEFAULT_BATCH) -> int:
    """Re-encrypt every document of ``raw`` not sealed under ``seal``'s active key; how
    many were rewritten.

    ``raw`` is the storage itself, not a
    :class:`~aws_iam_backend.io.storage._sync.sealed.SealedStorage` over it. Plain
    documents get sealed, ones sealed under an older key of ``seal`` are opened and
    sealed again; ``expires_at`` is kept. Each rewrite is conditioned on the
    version read (a batch at a time); after a conflict the batch's documents are redone
    one by one from a fresh read. Once it returns, keys other than the active one can be
    removed from the key file. A document sealed under a key ``seal`` does not hold, or
    tampered with, raises :class:`~aws_iam_backend.errors.InternalError`.
    """
    _check_batch(batch)
    keys = raw.list("")
    rewritten = 0
    for start in range(0, len(keys), batch):
        pending: list[Operation] = []
        for key in keys[start : start + batch]:
            document = raw.read(key)
            if document is None:
                continue
            value = _resealed(seal, document)
            if value is not None:
                pending.append(
                    Put(key, value, expect=document.version, expires_at=document.expires_at)
                )
        if not pending:
            continue
        try:
            raw.commit(pending)
        except ConflictError:
            rewritten += sum(_reseal_one(raw, seal, op.key) for op in pending)
        else:
            rewritten += len(pending)
    return rewritten


def _resealed(seal: Seal, document: Document) -> JSONDict | None:
    """``document``'s value sealed under the active key (None: it already is)."""
    if not seal.is_sealed(document.value):
        return seal.seal(document.key, document.value)
    if seal.key_id_of(document.value) == seal.active_key_id:
        return None
    return seal.seal(document.key, seal.unseal(document.key, document.value))


def _reseal_one(raw: Storage, seal: Seal, key: str) -> int:
    """Reseal ``key`` by itself, retrying on conflicts; 1 if it was rewritten."""
    wrote = False

    def change(document: Document | None) -> list[Operation] | None:
        nonlocal wrote
        value = None if document is None else _resealed(seal, document)
        wrote = value is not None
        if document is None or value is None:
            return None
        return [Put(key, value, expires_at=document.expires_at)]

    update(raw, key, change)
    return 1 if wrote else 0


__all__ = ["DEFAULT_BATCH", "copy_documents", "reseal"]
