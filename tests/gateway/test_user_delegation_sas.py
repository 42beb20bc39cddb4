"""User-delegation SAS URLs, the way production signs them: no account key, a managed identity.

Every other SAS test talks to Azurite with a connection string, so `_SasSigner` signs with the
account key. Production builds its Blob client from an account URL and DefaultAzureCredential
(gateway.clients.get_blob_service), and signs with a user delegation key instead. Here that path
runs for real, end to end:

- Azurite over HTTPS with `--oauth basic`, its certificate from a throwaway CA (TestCA) for
  127.0.0.1; the clients trust that CA (REQUESTS_CA_BUNDLE, for this module only) and verify it.
- The real azure-identity DefaultAzureCredential (ManagedIdentityCredential, App Service flavour)
  getting its tokens from the provider simulator's managed-identity endpoint (sorasim), which for
  the storage audience mints an unsigned JWT with the claims Azurite checks (sorasim/tokens.py).
- The gateway's own `blob_service(account_url=..., credential=...)`, `VideoAssets` and
  `read_url`.

What Azurite 3.37.0 (node_modules/azurite/package.json) does, read in its package:

- Bearer tokens (dist/src/blob/authentication/BlobTokenAuthenticator.js, authenticateBasic):
  only over HTTPS ("Authentication scheme Bearer is not allowed with HTTP"); the JWT is decoded
  with jsonwebtoken's `decode`, its signature is NOT verified ("Validate signature, skip in basic
  check"; README.md "OAuth Configuration": "Azurite will NOT check token signature and
  permission"); iat, nbf and exp must be present, with nbf <= now <= exp; iss must start with
  one of VALID_ISSUE_PREFIXES (dist/src/common/utils/constants.js, e.g.
  `https://sts.windows.net/`); aud must match VALID_BLOB_AUDIENCES
  (dist/src/blob/utils/constants.js, e.g. `https://storage.azure.com` with or without `/`).
- Get User Delegation Key (dist/src/blob/handlers/ServiceHandler.js, getUserDelegationKey):
  answers with the token's oid and tid as signedOid/signedTid, service "b", version
  BLOB_API_VERSION (2026-06-06), the asked start/expiry, and a value that is an HMAC-SHA256 of
  those fields under a fixed, public seed (getUserDelegationKeyValue in
  dist/src/blob/utils/utils.js, USERDELEGATIONKEY_SIGNING_SEED): the key is deterministic and
  not secret, so Azurite proves the URL was signed consistently, not that its signer held a key
  only Storage could give. Blob SAS requests cannot call it (BlobSASAuthenticator.js).
- User-delegation SAS on a request (dist/src/blob/authentication/BlobSASAuthenticator.js,
  validate): when any of skoid/sktid/skt/ske/sks/skv is present, all must be, with sks=b, no
  stored policy (si), and now within [skt, ske]; it recomputes the key from those fields and the
  signature (generateBlobSASSignatureWithUDK in IBlobSASSignatureValues.js, which covers sp, st,
  se, the canonical /blob/account/container/blob name, spr, sv, sr and the response headers)
  and refuses a mismatch (403 AuthorizationFailure from AuthenticationMiddlewareFactory.js). Then
  it checks st/se against now, spr against the request's protocol, and sp against the operation
  (403 AuthorizationPermissionMismatch for a write with sp=r). It does not check the key's
  version against anything, nor that se <= ske, nor the IP range (validateIPRange: "Emulator
  doesn't validate IP Address").

So the refusals asserted below (write, delete, another blob, a changed signature or field) are
Azurite's own verdicts. Two properties are asserted from the URL's fields only, and say so:
https-only (this Azurite serves HTTPS only, so a plain-HTTP request cannot be tried) and the
start/expiry times (Azurite checks now against them, not how they were chosen).

GetUserDelegationKey requests are counted in Azurite's own debug log (`--debug`), where its
DispatchMiddleware writes `Operation=Service_GetUserDelegationKey` for each one it receives.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import certifi
import pytest
import requests
from azure.core.credentials import TokenCredential
from azure.storage.blob import BlobServiceClient

import gateway.blobs
from devhost.azurite import Azurite
from gateway.blobs import CLOCK_SKEW, VideoAssets, blob_service
from sorasim import SoraSimulator
from sorasim.tokens import PRINCIPAL_ID, TENANT_ID
from tests.conftest import running_azurite
from tests.gateway.urls_tls import TestCA
from tests.simulator.conftest import use_managed_identity_of

CONTAINER = "videos"
PAYLOAD = uuid.uuid4().bytes * 4096  # 64 KiB, different on every run
DELEGATION_KEY_REQUEST = "Operation=Service_GetUserDelegationKey"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def https_azurite(tmp_path_factory: pytest.TempPathFactory, ca: TestCA) -> Iterator[Azurite]:
    """Azurite of its own on free loopback ports: HTTPS with the test CA's certificate, OAuth."""
    directory = tmp_path_factory.mktemp("azurite-oauth")
    tls = ca.server_files(directory, "127.0.0.1")
    with running_azurite(directory, tls=tls, oauth=True, debug_log=True) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def managed_identity(ca: TestCA) -> Iterator[SoraSimulator]:
    """The simulator's managed-identity endpoint as the only credential source; the test CA
    trusted by requests (and so by the Blob SDK's transport), for this module only."""
    with SoraSimulator() as simulator, pytest.MonkeyPatch.context() as patch:
        use_managed_identity_of(simulator, patch)
        patch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
        yield simulator


@pytest.fixture(scope="module")
def credential(managed_identity: SoraSimulator) -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    # As gateway.clients.get_credential builds it for a system-assigned identity.
    return DefaultAzureCredential(managed_identity_client_id=None)


@pytest.fixture(scope="module")
def service(https_azurite: Azurite, credential: TokenCredential) -> BlobServiceClient:
    """The Blob client as production builds it: an account URL and a token credential."""
    return blob_service(account_url=https_azurite.endpoint("blob"), credential=credential)


@pytest.fixture
def assets(service: BlobServiceClient) -> VideoAssets:
    """VideoAssets with a signer of its own (no delegation key cached yet)."""
    return VideoAssets(service, CONTAINER)


@pytest.fixture
def blob(assets: VideoAssets) -> str:
    name = f"app_{uuid.uuid4().hex[:8]}/video_1/video.mp4"
    assets.upload_bytes(name, PAYLOAD, content_type="video/mp4")
    return name


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode({**query(url), **changes})))


def for_blob(url: str, other: str) -> str:
    """The same query on another blob's path."""
    parts = urlsplit(url)
    container_path = parts.path.rsplit(f"/{CONTAINER}/", 1)[0]
    return urlunsplit(parts._replace(path=f"{container_path}/{CONTAINER}/{other}"))


def sas_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def get(url: str, ca: TestCA) -> requests.Response:
    return requests.get(url, timeout=10, verify=str(ca.bundle))


def delegation_key_requests(azurite: Azurite, ca: TestCA) -> int:
    """How many GetUserDelegationKey requests Azurite has received so far, from its debug log.

    The log is written asynchronously but in order: a request with a unique marker is sent
    first, and the log is read once that request's line is in it."""
    marker = f"log-marker-{uuid.uuid4().hex}"
    requests.head(f"{azurite.endpoint('blob')}/{marker}", timeout=10, verify=str(ca.bundle))
    deadline = time.monotonic() + 10
    while True:
        text = azurite.debug_log_path.read_text(errors="replace")
        if marker in text:
            return text.count(DELEGATION_KEY_REQUEST)
        assert time.monotonic() < deadline, "Azurite's debug log never showed the marker request"
        time.sleep(0.05)


def test_without_an_account_key_the_url_is_signed_with_a_delegation_key_and_downloads(
    service: BlobServiceClient, assets: VideoAssets, blob: str, ca: TestCA, managed_identity: SoraSimulator
) -> None:
    assert getattr(service.credential, "account_key", None) is None
    # The blob was uploaded with a bearer token the credential got from the simulator.
    assert managed_identity.stats()["tokens_issued"] >= 1
    assert service.url.startswith("https://127.0.0.1:")

    url = assets.read_url(blob, timedelta(minutes=10))

    fields = query(url)
    # Signed with a user delegation key Azurite issued for the simulator's identity (the oid and
    # tid of the token it was sent), not with an account key.
    assert (fields["skoid"], fields["sktid"]) == (PRINCIPAL_ID, TENANT_ID)
    assert fields["sks"] == "b"
    assert {"skt", "ske", "skv", "sig"} <= fields.keys()
    assert url.startswith("https://")
    response = get(url, ca)
    assert response.status_code == 200, response.text
    assert response.content == PAYLOAD
    assert response.headers["Content-Type"] == "video/mp4"
    # The certificate is really checked: without the test CA the same download fails.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, timeout=10, verify=certifi.where())


def test_the_url_reads_only_that_blob(assets: VideoAssets, blob: str, ca: TestCA) -> None:
    other = f"{blob.rsplit('/', 1)[0]}/other.mp4"
    assets.upload_bytes(other, b"another video", content_type="video/mp4")
    url = assets.read_url(blob, timedelta(minutes=10))

    fields = query(url)
    assert (fields["sp"], fields["sr"]) == ("r", "b")
    # Azurite's verdicts: no write, no delete with a read-only SAS; no other blob with its query.
    written = requests.put(
        url, data=b"overwritten", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10, verify=str(ca.bundle)
    )
    assert written.status_code == 403, written.text
    assert "AuthorizationPermissionMismatch" in written.text
    deleted = requests.delete(url, timeout=10, verify=str(ca.bundle))
    assert deleted.status_code == 403, deleted.text
    assert get(for_blob(url, other), ca).status_code == 403
    # ... though that other blob is there and readable with its own URL, and this one untouched.
    assert get(assets.read_url(other, timedelta(minutes=10)), ca).content == b"another video"
    assert get(url, ca).content == PAYLOAD


def test_the_url_is_https_only_and_lives_for_the_ttl(assets: VideoAssets, blob: str, ca: TestCA) -> None:
    ttl = timedelta(minutes=37)
    before = datetime.now(UTC)
    url = assets.read_url(blob, ttl)
    after = datetime.now(UTC)

    fields = query(url)
    # From the fields (this Azurite serves no plain HTTP to try): https only, as the service is.
    assert fields["spr"] == "https"
    # From the fields: expires after the ttl, starts CLOCK_SKEW early (whole seconds in a SAS).
    expiry, start = sas_time(fields["se"]), sas_time(fields["st"])
    assert before + ttl - timedelta(minutes=1) <= expiry <= after + ttl
    assert before - CLOCK_SKEW - timedelta(minutes=1) <= start <= after - CLOCK_SKEW
    assert get(url, ca).status_code == 200
    # Azurite's verdict on an expired one, signed through the same delegation key.
    expired = assets.read_url(blob, timedelta(seconds=-60))
    assert query(expired)["skt"] == fields["skt"]
    assert get(expired, ca).status_code == 403


def test_one_delegation_key_serves_many_urls_until_a_ttl_outlives_it(
    https_azurite: Azurite, assets: VideoAssets, blob: str, ca: TestCA
) -> None:
    ttl = timedelta(minutes=10)
    requests_before = delegation_key_requests(https_azurite, ca)

    first = assets.read_url(blob, ttl)
    second = assets.read_url(blob, ttl)

    assert delegation_key_requests(https_azurite, ca) == requests_before + 1
    assert (query(first)["skt"], query(first)["ske"]) == (query(second)["skt"], query(second)["ske"])
    key_expiry = sas_time(query(first)["ske"])

    # A URL that would outlive the cached key needs a new one, which lives at least as long.
    longer = key_expiry - datetime.now(UTC) + timedelta(hours=1)
    third = assets.read_url(blob, longer)

    assert delegation_key_requests(https_azurite, ca) == requests_before + 2
    assert sas_time(query(third)["ske"]) >= sas_time(query(third)["se"]) > key_expiry
    for url in (first, second, third):
        assert get(url, ca).content == PAYLOAD


def test_a_delegation_key_lives_a_day_and_is_renewed_only_for_a_url_that_would_outlive_it(
    https_azurite: Azurite, assets: VideoAssets, blob: str, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the signer's clock held still, the boundary is exact: a URL expiring at the very
    instant its key does reuses it; one microsecond later needs a new key. A key is asked for a
    day (or the URL's ttl, if longer), from CLOCK_SKEW before now."""
    frozen = datetime.now(UTC).replace(microsecond=0)

    class Clock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Clock:
            assert tz is UTC
            return cls.fromtimestamp(frozen.timestamp(), UTC)

    monkeypatch.setattr(gateway.blobs, "datetime", Clock)
    day = timedelta(days=1)
    requests_before = delegation_key_requests(https_azurite, ca)

    short = assets.read_url(blob, timedelta(minutes=10))
    fields = query(short)
    assert (sas_time(fields["skt"]), sas_time(fields["ske"])) == (frozen - CLOCK_SKEW, frozen + day)
    as_long_as_the_key = assets.read_url(blob, day)
    assert delegation_key_requests(https_azurite, ca) == requests_before + 1

    one_microsecond_longer = assets.read_url(blob, day + timedelta(microseconds=1))
    assert delegation_key_requests(https_azurite, ca) == requests_before + 2
    for url in (short, as_long_as_the_key, one_microsecond_longer):
        assert get(url, ca).content == PAYLOAD


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda fields: {"sig": flip_a_bit(fields["sig"])}, id="signature"),
        pytest.param(lambda fields: {"sp": "rw"}, id="permission"),
        pytest.param(lambda fields: {"se": "2099-01-01T00:00:00Z"}, id="expiry"),
        pytest.param(lambda fields: {"skoid": str(uuid.uuid4())}, id="key-object-id"),
    ],
)
def test_a_tampered_url_is_refused(
    assets: VideoAssets, blob: str, ca: TestCA, tamper: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    url = assets.read_url(blob, timedelta(minutes=10))
    assert get(url, ca).status_code == 200

    changed = with_query(url, **tamper(query(url)))

    assert changed != url
    response = get(changed, ca)
    assert response.status_code == 403, response.text
    assert "AuthorizationFailure" in response.text


def flip_a_bit(signature: str) -> str:
    raw = bytearray(base64.b64decode(signature))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()
