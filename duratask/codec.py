"""Payload encryption: what keeps prompts and outputs out of Temporal's clear history.

Every payload (workflow and activity inputs and results, signals, updates, queries,
and, with the encoded failure converter, error messages) is sealed with AES-256-GCM
before it leaves the process. The key id travels in the payload's metadata, so
after a rotation (a new key put first in `DURATASK_ENCRYPTION_KEYS`) payloads sealed
with an older key still open as long as that key stays in the list. The key id is
also the GCM associated data: a payload cannot be relabelled to another key.

Search attributes never go through a codec (Temporal indexes them), so they stay
clear; docs/security.md names them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from duratask.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class KeyListError(ValueError):
    """A key list that cannot be used; the message never contains key material."""


class DecryptError(ValueError):
    """A payload this process cannot open (unknown key id, tampered or wrong key)."""


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """`id1:base64key,id2:base64key` -> [(id, 32-byte key)], first is the encrypting one."""
    keys: list[tuple[str, bytes]] = []
    for n, item in enumerate(p.strip() for p in text.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise KeyListError(f"encryption key #{n + 1}: expected '<id>:<base64 key>'")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyListError(f"encryption key '{key_id}': not valid base64") from None
        if len(key) != 32:
            raise KeyListError(f"encryption key '{key_id}': AES-256 needs 32 bytes, got {len(key)}")
        if any(k == key_id for k, _ in keys):
            raise KeyListError(f"encryption key id '{key_id}' appears twice")
        keys.append((key_id, key))
    if not keys:
        raise KeyListError("encryption keys are set but empty")
    return keys


def new_key() -> str:
    """A fresh random key, base64 (for `duratask` docs and tests)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyListError("an encryption codec needs at least one key")
        self.key_id = keys[0][0]
        self._encrypt_with = AESGCM(keys[0][1])
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._encrypt_with.encrypt(
            nonce, payload.SerializeToString(), self.key_id.encode()
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()},
            data=nonce + sealed,
        )

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was turned on: clear already
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        aead = self._keys.get(key_id)
        if aead is None:
            raise DecryptError(f"payload sealed with unknown encryption key id '{key_id}'")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            clear = aead.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise DecryptError(
                f"payload does not open with encryption key '{key_id}' (tampered or wrong key)"
            ) from None
        return Payload.FromString(clear)


def codec_for(settings: Settings) -> EncryptionCodec | None:
    if settings.encryption_keys is None:
        return None
    return EncryptionCodec(parse_keys(settings.encryption_keys.get_secret_value()))


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter, plus encryption (payloads and failure text) when on."""
    codec = codec_for(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
