"""The AES-256-GCM payload codec: key parsing, sealing, rotation, tampering."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from duratask.codec import (
    ENCODING,
    KEY_ID,
    DecryptError,
    EncryptionCodec,
    KeyListError,
    data_converter,
    new_key,
    parse_keys,
)
from duratask.settings import Settings

CLEAR = Payload(metadata={"encoding": b"json/plain"}, data=b'{"prompt": "top secret"}')


def codec(*ids: str, keys: dict[str, str] | None = None) -> EncryptionCodec:
    keys = keys or {}
    return EncryptionCodec(parse_keys(",".join(f"{i}:{keys.get(i) or new_key()}" for i in ids)))


async def test_seals_with_the_first_key_and_opens_again() -> None:
    c = codec("a", "b")
    [sealed] = await c.encode([CLEAR])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"a"
    assert b"top secret" not in sealed.data
    assert (await c.decode([sealed])) == [CLEAR]
    [again] = await c.encode([CLEAR])
    assert again.data != sealed.data  # a fresh nonce every time


async def test_rotation_keeps_old_payloads_readable() -> None:
    keys = {"old": new_key(), "new": new_key()}
    [sealed] = await codec("old", keys=keys).encode([CLEAR])
    rotated = codec("new", "old", keys=keys)
    assert (await rotated.decode([sealed])) == [CLEAR]
    [fresh] = await rotated.encode([CLEAR])
    assert fresh.metadata[KEY_ID] == b"new"
    with pytest.raises(DecryptError, match="unknown encryption key id 'old'"):
        await codec("new", keys=keys).decode([sealed])


async def test_tampering_and_relabelling_are_refused() -> None:
    keys = {"a": new_key(), "b": new_key()}
    c = codec("a", "b", keys=keys)
    [sealed] = await c.encode([CLEAR])
    flipped = Payload(
        metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    with pytest.raises(DecryptError, match="tampered or wrong key"):
        await c.decode([flipped])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"b"}, data=sealed.data)
    with pytest.raises(DecryptError):
        await c.decode([relabelled])


async def test_clear_payloads_from_before_encryption_pass_through() -> None:
    assert (await codec("a").decode([CLEAR])) == [CLEAR]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("nokey", "expected '<id>:<base64 key>'"),
        ("a:!!!", "not valid base64"),
        (f"a:{base64.b64encode(b'short').decode()}", "needs 32 bytes, got 5"),
        (f"a:{new_key()},a:{new_key()}", "appears twice"),
    ],
)
def test_bad_key_lists_say_what_is_wrong_without_the_key(text: str, problem: str) -> None:
    with pytest.raises(KeyListError, match=problem) as e:
        parse_keys(text)
    for part in text.split(","):
        secret = part.partition(":")[2]
        if len(secret) > 8:
            assert secret not in str(e.value)


def test_data_converter_is_the_pydantic_one_until_keys_are_set() -> None:
    assert data_converter(Settings(_env_file=None)) is pydantic_data_converter  # type: ignore[call-arg]
    conv = data_converter(
        Settings(encryption_keys=SecretStr(f"k:{new_key()}"), _env_file=None)  # type: ignore[call-arg]
    )
    assert isinstance(conv.payload_codec, EncryptionCodec)
    assert conv.payload_converter_class is pydantic_data_converter.payload_converter_class


def test_keys_come_from_the_environment_and_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    monkeypatch.setenv("DURATASK_ENCRYPTION_KEYS", f"id1:{key}")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.encryption_keys is not None and key not in repr(s) and key not in str(s.model_dump())
    assert parse_keys(s.encryption_keys.get_secret_value())[0][0] == "id1"
