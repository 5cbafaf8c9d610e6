# The compiled build of mediaclock.py (setup.py compiles the .py itself with Cython; this file
# only declares what becomes C): the clock's and each track's fields as struct members, and
# the in-order path's locals typed, so reading ``state.committed`` is a load, not a lookup.
# Every field stays a Python object: the arithmetic is Python's (no overflow, no new errors).
cimport cython

from receiver.counters cimport Counters
from receiver.ringbuffer cimport TrackBuffer


cdef class TrackStats(Counters):
    cdef public object frames, samples_received, audio_gaps, audio_gap_samples, lost_frames, lead_samples
    cdef public object late, duplicates, overlap_samples


cdef class _TrackState:
    cdef public TrackBuffer buffer
    cdef public object committed, pending, seen_audio, fills, gap_spans
    cdef public TrackStats stats


cdef class MediaClock:
    cdef public dict _states
    cdef public object _allowance, _frame, _limit, _max_gap, _spms, _window
    cdef public object ahead, discontinuities, head, offset, sample_rate

    @cython.locals(state=_TrackState, stats=TrackStats)
    cpdef place_encoded(self, track, timestamp_ms, chunk, payload, decode, table, Py_ssize_t channel=*, Py_ssize_t channels=*)

    @cython.locals(state=_TrackState)
    cpdef _commit_behind(self, limit)
