"""Codecs against an oracle: the standard library's audioop (audioop-lts on 3.13+)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver import codecs
from receiver.errors import MalformedMessage
from receiver.events import Encoding, MediaFormat

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference G.711 implementation (used only in tests)

ALL_BYTES = bytes(range(256))


def test_ulaw_table_matches_reference_for_every_byte() -> None:
    assert codecs.decode_ulaw(ALL_BYTES).tobytes() == audioop.ulaw2lin(ALL_BYTES, 2)


def test_alaw_table_matches_reference_for_every_byte() -> None:
    assert codecs.decode_alaw(ALL_BYTES).tobytes() == audioop.alaw2lin(ALL_BYTES, 2)


@given(st.binary(max_size=2000))
def test_decode_ulaw_is_bit_exact_for_any_payload(payload: bytes) -> None:
    decoded = codecs.decode_ulaw(payload)

    assert decoded.dtype == np.int16
    assert len(decoded) == len(payload)
    assert decoded.tobytes() == audioop.ulaw2lin(payload, 2)


@given(st.binary(max_size=2000))
def test_decode_alaw_is_bit_exact_for_any_payload(payload: bytes) -> None:
    assert codecs.decode_alaw(payload).tobytes() == audioop.alaw2lin(payload, 2)


def test_encoders_match_reference_for_every_int16() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int16)

    assert codecs.encode_ulaw(samples) == audioop.lin2ulaw(samples.tobytes(), 2)
    assert codecs.encode_alaw(samples) == audioop.lin2alaw(samples.tobytes(), 2)


@given(st.lists(st.integers(-32768, 32767), max_size=500))
def test_l16_round_trips_in_both_byte_orders(values: list[int]) -> None:
    samples = np.array(values, dtype=np.int16)
    little = samples.astype("<i2").tobytes()
    big = samples.astype(">i2").tobytes()

    assert np.array_equal(codecs.decode_l16(little, byteorder="little"), samples)
    assert np.array_equal(codecs.decode_l16(big, byteorder="big"), samples)
    assert codecs.encode_l16(samples, byteorder="big") == big


def test_l16_little_endian_reads_low_byte_first() -> None:
    assert codecs.decode_l16(b"\x01\x00\x00\x80", byteorder="little").tolist() == [1, -32768]


def test_l16_with_odd_length_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        codecs.decode_l16(b"\x00\x01\x02", byteorder="little")


@pytest.mark.parametrize(
    "fmt",
    [MediaFormat(Encoding.MULAW, 8000), MediaFormat(Encoding.ALAW, 8000), MediaFormat(Encoding.L16, 16000)],
)
def test_decoder_for_agrees_with_decode(fmt: MediaFormat) -> None:
    payload = bytes(range(200))

    assert np.array_equal(codecs.decoder_for(fmt)(payload), codecs.decode(fmt, payload))


def test_decoded_arrays_do_not_alias_the_tables() -> None:
    decoded = codecs.decode_ulaw(b"\x00\x01")
    decoded[0] = 123

    assert codecs.decode_ulaw(b"\x00")[0] != 123


def test_silence_bytes_decode_to_near_zero() -> None:
    assert abs(int(codecs.decode_ulaw(bytes([codecs.SILENCE_BYTE[Encoding.MULAW]]))[0])) == 0
    assert abs(int(codecs.decode_alaw(bytes([codecs.SILENCE_BYTE[Encoding.ALAW]]))[0])) <= 8


def test_importing_the_codecs_never_loads_audioop() -> None:
    code = "import sys, receiver.codecs, receiver.stream.server; print('audioop' in sys.modules)"

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "False"
