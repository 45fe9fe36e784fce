"""Vault's ``ec2`` login type and EC2 inference, as pure functions over values.

- :mod:`.document`: the instance identity document.
- :mod:`.pkcs7` and :mod:`.certificates`: its signatures and AWS's public certificates.
- :mod:`.instance`: a described instance checked against a role's EC2 bindings.
- :mod:`.roletag`: role tags and their deny list.
- :mod:`.accesslist`: the identity access list and Vault's reauthentication rules.
"""
