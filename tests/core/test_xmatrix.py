"""X-Matrix request signing: round trip, tampering, and malformed headers."""

from __future__ import annotations

import pytest

from hamlet.core.crypto import generate_signing_key, verify_key_base64
from hamlet.core.errors import SignatureError
from hamlet.core.xmatrix import parse_header, sign_request, verify_request

KEY = generate_signing_key("k1")
ORIGIN = "origin.example"
DEST = "127.0.0.1:8448"


def _header(content: object = None, uri: str = "/_matrix/federation/v1/send/1") -> str:
    return sign_request(
        method="put", uri=uri, origin=ORIGIN, destination=DEST, content=content, signing_key=KEY
    )


def _verify(
    header: str,
    *,
    uri: str = "/_matrix/federation/v1/send/1",
    content: object = None,
    destination: str = DEST,
    method: str = "PUT",
) -> None:
    verify_request(
        parse_header(header),
        method=method,
        uri=uri,
        destination=destination,
        content=content,
        verify_key=verify_key_base64(KEY),
    )


def test_round_trip_with_and_without_body() -> None:
    _verify(_header({"pdus": [], "edus": []}), content={"pdus": [], "edus": []})
    _verify(_header(), content=None)
    auth = parse_header(_header())
    assert (auth.origin, auth.key_id, auth.destination) == (ORIGIN, "ed25519:k1", DEST)


@pytest.mark.parametrize(
    "change",
    [
        {"uri": "/_matrix/federation/v1/send/2"},
        {"content": {"pdus": [1]}},
        {"method": "POST"},
        {"destination": "other.example"},
    ],
)
def test_any_change_to_the_request_fails(change: dict[str, object]) -> None:
    header = _header({"pdus": []})
    kwargs: dict[str, object] = {"content": {"pdus": []}, **change}
    with pytest.raises(SignatureError):
        _verify(header, **kwargs)  # type: ignore[arg-type]


def test_header_without_destination_is_accepted_for_older_servers() -> None:
    auth = parse_header(_header())
    legacy = f'X-Matrix origin={ORIGIN},key="{auth.key_id}",sig="{auth.signature}"'
    parsed = parse_header(legacy)
    assert parsed.destination is None
    _verify(legacy)


def test_parameter_names_are_case_insensitive_and_spaces_allowed() -> None:
    auth = parse_header(_header())
    header = f'X-Matrix Origin="{ORIGIN}", KEY="{auth.key_id}" , Sig="{auth.signature}"'
    assert parse_header(header).signature == auth.signature


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer abc",
        'X-Matrix origin="a.example",key="ed25519:x"',
        'X-Matrix origin="a.example",key="ed25519:x",sig="s",origin="b.example"',
        'X-Matrix origin="bad server",key="ed25519:x",sig="s"',
        'X-Matrix origin="a.example",key="rsa:x",sig="s"',
        'X-Matrix origin="a.example" key="ed25519:x" sig="s"',
        "X-Matrix " + "a" * 5000,
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureError):
        parse_header(header)


def test_wrong_key_fails() -> None:
    other = generate_signing_key("k1")
    with pytest.raises(SignatureError):
        verify_request(
            parse_header(_header()),
            method="PUT",
            uri="/_matrix/federation/v1/send/1",
            destination=DEST,
            content=None,
            verify_key=verify_key_base64(other),
        )
