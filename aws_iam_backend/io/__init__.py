"""The I/O boundary: the protocols the core needs (``protocols``, ``clock``) and their
implementations: STS transport, IAM lookups, storage, the shared cache and the seal."""
