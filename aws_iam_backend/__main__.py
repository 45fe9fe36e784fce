"""``python -m aws_iam_backend``: the ``aws-iam-backend`` command."""

import sys

from aws_iam_backend.cli import main

sys.exit(main())
