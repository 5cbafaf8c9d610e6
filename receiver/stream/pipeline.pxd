# The compiled build of pipeline.py (see receiver/mediaclock.pxd): the pipeline's fields as
# struct members, and its clock typed, so ``media`` calls the clock's in-order path in C.
from receiver.mediaclock cimport MediaClock


cdef class StreamPipeline:
    cdef public MediaClock clock
    cdef public object _decode, _table, _probe, _settings, buffers, fanout, info, undeclared

    cpdef media(self, event)
    cpdef frame(self, track, timestamp_ms, chunk, payload)
    cpdef media_interleaved(self, event)
    cpdef interleaved(self, tracks, payload)
