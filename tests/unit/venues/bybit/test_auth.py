"""Bybit v5 signing: the docs' published strings-to-sign byte for byte, headers, WS auth."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from decimal import Decimal

import orjson
import pytest

from nautilus_hmm.domain.enums import Side
from nautilus_hmm.venues.bybit.auth import (
    API_KEY_HEADER,
    RECV_WINDOW_HEADER,
    SIGN_HEADER,
    SIGN_TYPE_HEADER,
    TIMESTAMP_HEADER,
    Credentials,
    encode_query,
    json_body,
    rest_signature,
    signed_headers,
    string_to_sign,
    verify_rest_signature,
    verify_ws_auth,
    ws_auth_args,
    ws_auth_payload,
    ws_auth_request,
)
from tests.conftest import fixture_path
from tests.unit.venues.binance.jsonc import load_jsonc

SECRET = "s3cr3t-Test-Secret"


def _rule() -> dict:
    return json.loads(fixture_path("signatures", "bybit_v5_hmac_sha256_rule.json").read_text())


def _hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def test_get_string_to_sign_matches_the_docs_byte_for_byte() -> None:
    ex = next(e for e in _rule()["examples"] if e["method"] == "GET")
    got = string_to_sign(ex["timestamp"], ex["api_key"], ex["recv_window"], ex["queryString"])
    assert got.encode() == ex["string_to_sign"].encode()


def test_post_string_to_sign_matches_the_docs_byte_for_byte() -> None:
    ex = next(e for e in _rule()["examples"] if e["method"] == "POST")
    got = string_to_sign(ex["timestamp"], ex["api_key"], ex["recv_window"], ex["jsonBodyString"])
    assert got.encode() == ex["string_to_sign"].encode()


def test_rest_signature_is_hmac_sha256_hex_of_the_string_to_sign() -> None:
    ex = next(e for e in _rule()["examples"] if e["method"] == "GET")
    sig = rest_signature(SECRET, ex["timestamp"], ex["api_key"], ex["recv_window"], ex["queryString"])
    assert sig == _hmac_hex(SECRET, ex["string_to_sign"])
    assert len(sig) == 64 and sig == sig.lower()
    # The same through Credentials.
    creds = Credentials(ex["api_key"], SECRET)
    assert rest_signature(creds, ex["timestamp"], ex["api_key"], ex["recv_window"], ex["queryString"]) == sig


def test_signed_headers_carry_key_timestamp_window_and_signature_of_the_payload() -> None:
    creds = Credentials("XXXXXXXXXX", SECRET)
    body = '{"category": "option"}'
    h = signed_headers(creds, 1658385579423, 5000, body)
    assert h[API_KEY_HEADER] == "XXXXXXXXXX"
    assert h[TIMESTAMP_HEADER] == "1658385579423"
    assert h[RECV_WINDOW_HEADER] == "5000"
    assert h[SIGN_TYPE_HEADER] == "2"
    ex = next(e for e in _rule()["examples"] if e["method"] == "POST")
    assert h[SIGN_HEADER] == _hmac_hex(SECRET, ex["string_to_sign"])
    assert verify_rest_signature(SECRET, h, body)


def test_a_changed_payload_or_secret_fails_verification() -> None:
    creds = Credentials("key123456", SECRET)
    h = signed_headers(creds, 1_700_000_000_000, 5000, "category=linear&symbol=BTCUSDT")
    assert not verify_rest_signature(SECRET, h, "category=linear&symbol=ETHUSDT")
    assert not verify_rest_signature("other", h, "category=linear&symbol=BTCUSDT")
    assert not verify_rest_signature(SECRET, {k: v for k, v in h.items() if k != SIGN_HEADER}, "x")
    # Header names are case-insensitive on the wire.
    assert verify_rest_signature(SECRET, {k.lower(): v for k, v in h.items()}, "category=linear&symbol=BTCUSDT")


def test_ws_auth_signs_get_realtime_and_expires() -> None:
    creds = Credentials("api_key", SECRET)
    assert ws_auth_payload(1662350400000) == "GET/realtime1662350400000"
    args = ws_auth_args(creds, 1662350400000)
    assert args == ["api_key", 1662350400000, _hmac_hex(SECRET, "GET/realtime1662350400000")]
    assert verify_ws_auth(SECRET, "api_key", args, now_ms=1662350399000) is None
    assert verify_ws_auth(SECRET, "api_key", args, now_ms=1662350400000) is not None  # expired
    assert verify_ws_auth(SECRET, "other", args) == "invalid api key"
    assert verify_ws_auth(SECRET, "api_key", [args[0], args[1] + 1, args[2]]) == "signature mismatch"
    assert verify_ws_auth(SECRET, "api_key", args[:2]) is not None


def test_ws_auth_request_has_the_documented_shape() -> None:
    doc = load_jsonc(fixture_path("bybit", "docs_v5", "ws_auth_request.jsonc"))
    req = ws_auth_request(Credentials("api_key", SECRET), doc["args"][1], req_id=doc["req_id"])
    assert set(req) == set(doc)
    assert req["op"] == doc["op"] == "auth"
    assert [type(a) for a in req["args"]] == [type(a) for a in doc["args"]]  # expires is a number
    assert req["args"][1] == doc["args"][1]


def test_query_is_encoded_in_order_and_drops_none() -> None:
    q = encode_query({"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "a b&c", "limit": 50, "x": None})
    assert q == "category=linear&symbol=BTCUSDT&orderLinkId=a%20b%26c&limit=50"


def test_a_cursor_goes_back_as_bybit_gave_it() -> None:
    # nextPageCursor of the docs' execution/list example: already percent-encoded.
    q = encode_query({"category": "linear", "cursor": "132766%3A2%2C132766%3A2"})
    assert q == "category=linear&cursor=132766%3A2%2C132766%3A2"
    assert encode_query({"cursor": "a=b&c"}) == "cursor=a%3Db%26c"  # raw separators are still escaped


def test_json_body_sends_money_as_strings_and_keeps_ints_and_bools() -> None:
    body = json_body({"category": "spot", "side": "Buy", "qty": Decimal("0.00100"), "price": 1e-7,
                      "isLeverage": 0, "reduceOnly": False, "orderLinkId": None})
    assert orjson.loads(body) == {"category": "spot", "side": "Buy", "qty": "0.00100", "price": "0.0000001",
                                  "isLeverage": 0, "reduceOnly": False}
    assert " " not in body  # compact: exactly the text that is signed
    assert orjson.loads(json_body({"side": Side.BUY}))["side"] == "BUY"


def test_json_body_refuses_non_finite_numbers() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        json_body({"qty": Decimal("NaN")})


def test_credentials_hide_the_secret_and_refuse_bad_text() -> None:
    creds = Credentials("ABCDEFGHIJ", SECRET)
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    assert "ABCDEFGHIJ" not in repr(creds)
    with pytest.raises(TypeError):
        pickle.dumps(creds)
    with pytest.raises(ValueError, match="api_secret contains whitespace"):
        Credentials("key", "secret\n")
    with pytest.raises(ValueError, match="api_key must be a non-empty string"):
        Credentials("", SECRET)
