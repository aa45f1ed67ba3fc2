"""moto_server as keyrot's tests run it: the same server, with what differs from AWS fixed where a test
would otherwise fail for moto's sake rather than keyrot's.

- DynamoDB writes are serialized. moto applies a TransactWriteItems by copying the tables it touches and,
  when a condition fails, putting the copies back, which silently undoes every write that other requests
  made to those tables meanwhile (moto/dynamodb/models: transact_write_items). DynamoDB never loses such
  writes; with every write under one lock, moto does not either.
- RotateSecret refuses while a rotation is in progress, as AWS does ("A previous rotation isn't complete.
  That rotation will be reattempted."): AWSPENDING on a version that is not AWSCURRENT, asked for by
  another token. moto starts a second rotation over the first, which AWS never lets happen. (moto still
  leaves the AWSPENDING of a RotateImmediately=false configuration test, which AWS removes: the tests
  and the demo play AWS's part there.)
- `--no-signature-check` (the IAM test's moto only): moto re-computes each request's SigV4 signature and
  gets it wrong for the Rust SDK's form bodies that hold `(`, `[` or `>` (SNS Publish), which AWS accepts.
  The signature check is skipped; each request is still authorized by its signer's IAM policies.

Usage: python3 scripts/moto_server.py [--no-signature-check] -H 127.0.0.1 -p PORT
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend

_writes = threading.RLock()


def _serialized(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _writes:
            return method(*args, **kwargs)

    return locked


for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))

from moto.secretsmanager.exceptions import InvalidRequestException  # noqa: E402
from moto.secretsmanager.models import SecretsManagerBackend  # noqa: E402

_rotate_secret = SecretsManagerBackend.rotate_secret


def _one_rotation_at_a_time(self, secret_id, client_request_token=None, *args, **kwargs):
    secret = self.secrets[secret_id] if self._is_valid_identifier(secret_id) else None
    for version_id, version in (getattr(secret, "versions", None) or {}).items():
        stages = version.get("version_stages", [])
        pending = "AWSPENDING" in stages and "AWSCURRENT" not in stages
        if pending and version_id != client_request_token:
            raise InvalidRequestException(
                "A previous rotation isn't complete. That rotation will be reattempted."
            )
    return _rotate_secret(self, secret_id, client_request_token, *args, **kwargs)


SecretsManagerBackend.rotate_secret = _one_rotation_at_a_time

args = sys.argv[1:]
if "--no-signature-check" in args:
    args.remove("--no-signature-check")
    from moto.iam.access_control import IAMRequestBase

    IAMRequestBase.check_signature = lambda self: None

from moto.server import main  # noqa: E402

sys.exit(main(args))
