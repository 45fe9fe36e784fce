"""Vault's ``ec2`` login type and EC2 inference, as pure functions over values.

- :mod:`.document`: the instance identity document.
- :mod:`.pkcs7` and :mod:`.certificates`: its signatures and AWS's public certificates.
- :mod:`.instance`: a described instance checked against a role's EC2 bindings.
- :mod:`.roletag`: role tags and their deny list.
- :mod:`.accesslist`: the identity access list and Vault's reauthentication rules.
"""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

# AWS still signs PKCS#7 identity documents with DSA keys (its /pkcs7 certificates), so this
# package must load and verify them; cryptography's DSA deprecation is silenced for this
# package's own calls only.
warnings.filterwarnings(
    "ignore",
    message="DSA is deprecated",
    category=CryptographyDeprecationWarning,
    module=r"aws_iam_backend\.ec2\.",
)
