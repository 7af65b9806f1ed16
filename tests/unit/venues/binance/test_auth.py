"""Binance signing: the documented HMAC vectors, Ed25519, secret hiding, server time."""

from __future__ import annotations

import base64
import pickle
from decimal import Decimal

import orjson
import pytest

from nautilus_hmm.domain.enums import Side
from nautilus_hmm.venues.binance.auth import (
    Credentials,
    ServerTimeOffset,
    api_key_headers,
    encode_query,
    format_value,
    sign_request,
    signed_query,
    signed_ws_api_params,
    ws_api_payload,
)
from tests.conftest import fixture_path


def _vectors() -> dict[str, dict]:
    data = orjson.loads(fixture_path("signatures", "binance_hmac_sha256_vectors.json").read_bytes())
    return {v["id"]: v for v in data["vectors"]}


def _pairs(payload: str) -> list[tuple[str, str]]:
    return [tuple(p.split("=", 1)) for p in payload.split("&")]  # type: ignore[misc]


def _creds(v: dict) -> Credentials:
    return Credentials(v["apiKey"], v["secretKey"])


def test_all_five_documented_vectors_are_present() -> None:
    assert len(_vectors()) == 5


def test_rest_ascii_vector_reproduces_query_and_signature() -> None:
    v = _vectors()["rest_hmac_ascii"]
    pairs = _pairs(v["query_string"])
    params = [(k, val) for k, val in pairs if k not in ("recvWindow", "timestamp")]
    q = signed_query(_creds(v), params, timestamp_ms=1499827319559, recv_window_ms=5000)
    assert q == f"{v['query_string']}&signature={v['expected_signature_hex']}"


def test_rest_non_ascii_symbol_is_percent_encoded_before_signing() -> None:
    v = _vectors()["rest_hmac_non_ascii_percent_encoded"]
    params = [(k, val) for k, val in _pairs(v["unencoded_payload"]) if k not in ("recvWindow", "timestamp")]
    q = signed_query(_creds(v), params, timestamp_ms=1499827319559, recv_window_ms=5000)
    query, _, sig = q.rpartition("&signature=")
    assert query == v["query_string"]
    assert sig == v["expected_signature_hex"]


def test_rest_query_and_body_are_signed_without_separator() -> None:
    v = _vectors()["rest_hmac_mixed_query_and_body_historic"]
    assert sign_request(_creds(v), v["query_string"], v["request_body"]) == v["expected_signature_hex"]


@pytest.mark.parametrize("vector_id", ["ws_api_hmac_ascii", "ws_api_hmac_non_ascii_utf8"])
def test_ws_api_vector_signs_sorted_raw_params_including_api_key(vector_id: str) -> None:
    v = _vectors()[vector_id]
    pairs = dict(_pairs(v["signed_payload"]))
    ts, rw = int(pairs.pop("timestamp")), int(pairs.pop("recvWindow"))
    pairs.pop("apiKey")
    # Insertion order deliberately unsorted: the payload must sort by name.
    params = dict(reversed(list(pairs.items())))
    out = signed_ws_api_params(_creds(v), params, timestamp_ms=ts, recv_window_ms=rw)
    assert ws_api_payload(out) == v["signed_payload"]
    assert out["signature"] == v["expected_signature_hex"]
    assert out["apiKey"] == v["apiKey"]


def test_credentials_repr_and_str_never_show_the_secret() -> None:
    v = _vectors()["rest_hmac_ascii"]
    creds = _creds(v)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert v["secretKey"] not in text
        assert v["apiKey"] not in text
        assert "redacted" in text


def test_credentials_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(_creds(_vectors()["rest_hmac_ascii"]))


def test_credentials_reject_whitespace_without_echoing_the_value() -> None:
    with pytest.raises(ValueError) as exc:
        Credentials("key", "s3cr3t-value\n")
    assert "s3cr3t" not in str(exc.value)
    assert "secret" in str(exc.value)


def test_credentials_reject_empty_api_key() -> None:
    with pytest.raises(ValueError, match="api_key"):
        Credentials("", "secret")


def test_api_key_header_carries_the_key() -> None:
    assert api_key_headers(Credentials("abc", "def")) == {"X-MBX-APIKEY": "abc"}


def test_format_value_writes_decimals_without_exponent_and_lowercase_booleans() -> None:
    assert format_value(Decimal("1E-8")) == "0.00000001"
    assert format_value(Decimal("1E+1")) == "10"
    assert format_value(True) == "true"
    assert format_value(Side.BUY) == "BUY"
    assert format_value(0.1) == "0.1"


def test_encode_query_drops_none_and_encodes_reserved_characters() -> None:
    assert encode_query({"symbols": '["BTCUSDT"]', "limit": None, "a": 1}) == "symbols=%5B%22BTCUSDT%22%5D&a=1"


def test_signed_query_without_recv_window_appends_only_timestamp() -> None:
    q = signed_query(Credentials("k", "s"), {"symbol": "BTCUSDT"}, timestamp_ms=5, recv_window_ms=None)
    assert q.startswith("symbol=BTCUSDT&timestamp=5&signature=")


def _ed25519_pem() -> tuple[bytes, object]:
    ed = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    ser = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    key = ed.Ed25519PrivateKey.generate()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    return pem, key.public_key()


def test_ed25519_signature_verifies_with_the_public_key() -> None:
    pem, public = _ed25519_pem()
    creds = Credentials.ed25519("key", pem)
    payload = "symbol=BTCUSDT&side=SELL&timestamp=1668481559918"
    sig = creds.sign(payload)
    public.verify(base64.b64decode(sig), payload.encode())  # type: ignore[attr-defined]
    assert creds.kind == "ed25519"


def test_ed25519_signature_is_percent_encoded_in_rest_query() -> None:
    pem, _ = _ed25519_pem()
    q = signed_query(Credentials.ed25519("key", pem), {"symbol": "BTCUSDT"}, timestamp_ms=1)
    sig = q.rpartition("&signature=")[2]
    assert not set(sig) & set("+/=")


def test_server_time_offset_uses_round_trip_midpoint() -> None:
    off = ServerTimeOffset()
    off.update(local_send_ns=1_000_000_000_000, local_recv_ns=1_000_200_000_000, server_time_ms=1_000_600)
    assert off.offset_ms == 500
    assert off.round_trip_ms == 200
    assert off.timestamp_ms(2_000_000_000_000) == 2_000_500


def test_server_time_offset_rejects_receive_before_send() -> None:
    with pytest.raises(ValueError, match="before send"):
        ServerTimeOffset().update(local_send_ns=2, local_recv_ns=1, server_time_ms=0)


@pytest.mark.parametrize("text", ["BTCUSDT", "0.00020000", "nh-abc123-xyz-7", "a b", "x+y/z=", "50%", "",
                                  "ü€", "~._-", "line\nbreak", "a&b=c", "🙂"])
def test_fast_percent_encoding_equals_quote(text: str) -> None:
    """The shortcut for unreserved-only text must encode exactly as urllib's quote(safe="")."""
    from urllib.parse import quote

    from nautilus_hmm.venues.binance.auth import _pct

    assert _pct(text) == quote(text, safe="")


def test_signed_query_encodes_reserved_characters_in_values() -> None:
    q = signed_query(Credentials("key", "secret"), {"symbol": "BTC USDT", "note": "a&b=c"}, timestamp_ms=1,
                     recv_window_ms=None)
    assert q.startswith("symbol=BTC%20USDT&note=a%26b%3Dc&timestamp=1&signature=")
