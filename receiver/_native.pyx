# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""
The compiled build of ``receiver/_pure.py``: the two innermost loops of the media path in C.

Same functions, same results, same errors as the pure-Python module, which
``receiver.speedups`` imports instead when this extension was not built (no C
compiler at install time) or ``RECEIVER_PURE_PYTHON=1`` asks for it. The test
suite runs against both (``make test`` and ``make test-pure``).

- ``next_frame``: cut one WebSocket frame out of the bytes a read brought,
  unmask it and (text) decode its UTF-8, without a Python object per header
  field or a copy of the buffer;
- ``ring_write``: G.711 decoding (one table lookup per byte), or L16 in this
  machine's byte order copied, straight into a ring buffer's samples, across
  its end where the samples reach it.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int16_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy


cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)


# next_frame's statuses (the same values as receiver/_pure.py's).
NEED_MORE = 0  # the frame at ``pos`` is not complete yet
DATA = 1  # a final, masked text or binary frame: its message, and where the next frame starts
CONTROL = 2  # a final, masked control frame from ``pos`` to ``stop``: for websockets
OTHER = 3  # anything else from ``pos`` on (fragment, unmasked, reserved bits, too big): for websockets
BAD_UTF8 = 4  # a text frame whose payload is not UTF-8: for websockets (which closes 1007)

cdef int _NEED_MORE = 0, _DATA = 1, _CONTROL = 2, _OTHER = 3, _BAD_UTF8 = 4

# Text payloads up to this size are unmasked on the stack before decoding (a media frame is a few hundred bytes).
DEF STACK_BYTES = 8192


cdef inline void _unmask(const uint8_t *src, uint8_t *dst, Py_ssize_t n, const uint8_t *key) noexcept nogil:
    cdef uint32_t k4
    cdef uint64_t k8, w
    cdef Py_ssize_t i = 0
    memcpy(&k4, key, 4)
    k8 = (<uint64_t>k4 << 32) | k4
    while i + 8 <= n:
        memcpy(&w, src + i, 8)
        w ^= k8
        memcpy(dst + i, &w, 8)
        i += 8
    while i < n:
        dst[i] = src[i] ^ key[i & 3]
        i += 1


def next_frame(object buf, Py_ssize_t pos, Py_ssize_t max_size):
    """The frame of ``buf`` (bytes or bytearray) starting at ``pos``: ``(status, message, stop)``.

    ``message`` is the unmasked payload (``str`` for text, ``bytes`` for binary)
    when ``status`` is ``DATA``, else None; ``stop`` is where the frame ends
    (``DATA``, ``CONTROL``), else ``pos``. ``max_size`` < 0: no limit.
    """
    cdef const uint8_t *p
    cdef Py_ssize_t end, n, head, stop
    cdef uint8_t b0, b1, opcode
    cdef int i
    cdef uint64_t n64
    cdef uint8_t stack[STACK_BYTES]
    cdef uint8_t *tmp
    cdef object message
    if type(buf) is bytes:
        p = <const uint8_t *>PyBytes_AS_STRING(buf)
        end = PyBytes_GET_SIZE(buf)
    elif type(buf) is bytearray:
        p = <const uint8_t *>PyByteArray_AS_STRING(buf)
        end = PyByteArray_GET_SIZE(buf)
    else:
        raise TypeError("next_frame takes bytes or bytearray")
    if pos < 0 or end - pos < 2:
        return (_NEED_MORE, None, pos)
    b0 = p[pos]
    b1 = p[pos + 1]
    n64 = b1 & 0x7F
    if n64 < 126:
        head = pos + 2
    elif n64 == 126:
        if end - pos < 4:
            return (_NEED_MORE, None, pos)
        n64 = (<uint64_t>p[pos + 2] << 8) | p[pos + 3]
        head = pos + 4
    else:
        if end - pos < 10:
            return (_NEED_MORE, None, pos)
        n64 = 0
        for i in range(8):
            n64 = (n64 << 8) | p[pos + 2 + i]
        head = pos + 10
    opcode = b0 & 0x0F
    if not (b1 & 0x80) or (b0 & 0x70) or (max_size >= 0 and n64 > <uint64_t>max_size):
        return (_OTHER, None, pos)  # unmasked, reserved bits, or over the size limit
    if end - head < 4 or n64 > <uint64_t>(end - head - 4):
        return (_NEED_MORE, None, pos)
    n = <Py_ssize_t>n64
    stop = head + 4 + n
    if not (b0 & 0x80):
        return (_OTHER, None, pos)  # a fragment
    if opcode == 0x1:
        tmp = &stack[0] if n <= STACK_BYTES else <uint8_t *>malloc(n)
        if tmp == NULL:
            raise MemoryError()
        try:
            _unmask(p + head + 4, tmp, n, p + head)
            try:
                message = PyUnicode_DecodeUTF8(<const char *>tmp, n, NULL)
            except UnicodeDecodeError:
                return (_BAD_UTF8, None, pos)
        finally:
            if tmp != &stack[0]:
                free(tmp)
        return (_DATA, message, stop)
    if opcode == 0x2:
        message = PyBytes_FromStringAndSize(NULL, n)
        _unmask(p + head + 4, <uint8_t *>PyBytes_AS_STRING(message), n, p + head)
        return (_DATA, message, stop)
    if opcode == 0x8 or opcode == 0x9 or opcode == 0xA:
        return (_CONTROL, None, stop)
    return (_OTHER, None, pos)  # continuation frames, reserved opcodes


cdef inline void _decode(
    const int16_t *t, const uint8_t *c, int16_t *o, Py_ssize_t n, Py_ssize_t step
) noexcept nogil:
    """``n`` samples from ``c`` into ``o``: looked up in ``t``, or copied (L16) where ``t`` is NULL.

    ``step``: the samples' distance in ``c`` (1, or the channels of interleaved audio)."""
    cdef Py_ssize_t k
    if t == NULL:
        if step == 1:
            memcpy(o, c, n * 2)
        else:
            for k in range(n):
                memcpy(o + k, c + 2 * k * step, 2)
    elif step == 1:
        for k in range(n):
            o[k] = t[c[k]]
    else:
        for k in range(n):
            o[k] = t[c[k * step]]


def ring_write(
    object table, object codes, object ring, Py_ssize_t head, Py_ssize_t channel=0, Py_ssize_t channels=1
):
    """Decode ``codes`` into the int16 ``ring`` as samples ``head`` on; return ``head`` + their number.

    Sample ``j`` of the track lives at ``ring[j % len(ring)]``: the samples go
    round the ring's end where they reach it, and of more than the ring holds
    only the last ``len(ring)`` stay. ``table``: 256 int16 samples (G.711,
    ``table[c]`` for every byte ``c``), or empty (``codecs.COPY``: ``codes``
    are int16 samples in this machine's byte order). ``channels`` > 1: ``codes``
    interleaves that many channels sample by sample, and only ``channel`` is written.

    Raises:
        ValueError: A table of another size, codes that are not whole samples of every
            channel, a channel outside them, an empty ring, or a negative ``head``.
    """
    cdef Py_buffer tb, cb, ob
    cdef const int16_t *t = NULL
    cdef const uint8_t *c
    cdef int16_t *o
    cdef Py_ssize_t n, cap, skip, start, i, first, width
    if channels < 1 or not 0 <= channel < channels:
        raise ValueError("the channel must be one of the channels")
    PyObject_GetBuffer(table, &tb, PyBUF_SIMPLE)
    try:
        if tb.len != 512 and tb.len != 0:
            raise ValueError("the table must hold 256 int16 samples")
        PyObject_GetBuffer(codes, &cb, PyBUF_SIMPLE)
        try:
            width = 2 if tb.len == 0 else 1
            if cb.len % (width * channels):
                raise ValueError("L16 takes an even number of bytes" if channels == 1 else "whole samples of every channel")
            n = cb.len // (width * channels)
            PyObject_GetBuffer(ring, &ob, PyBUF_WRITABLE)
            try:
                cap = ob.len // 2
                if cap == 0 or head < 0:
                    raise ValueError("an empty ring, or a negative head")
                if tb.len:
                    t = <const int16_t *>tb.buf
                c = <const uint8_t *>cb.buf + channel * width
                o = <int16_t *>ob.buf
                skip = n - cap if n > cap else 0  # only the last ``cap`` samples survive
                start = head + skip
                i = start % cap
                first = min(n - skip, cap - i)
                _decode(t, c + skip * width * channels, o + i, first, channels)
                _decode(t, c + (skip + first) * width * channels, o, n - skip - first, channels)
            finally:
                PyBuffer_Release(&ob)
        finally:
            PyBuffer_Release(&cb)
    finally:
        PyBuffer_Release(&tb)
    return head + n
