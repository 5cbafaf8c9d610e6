# The compiled build of session.py (see receiver/mediaclock.pxd): the session and its
# counters as C classes, so the media message's fast branch reads and counts struct members.
cimport cython

from receiver.counters cimport Counters


cdef class SessionStats(Counters):
    cdef public object messages, media_messages, dtmf, marks, unknown_events, sequence_gaps, sequence_out_of_order


cdef class StreamSession:
    cdef public object _dialogue, _fast_media, _format, _last_sequence, _parser, _plain_media, _preset, _route
    cdef public object _ts_base, backlog, connection_id, platform, readings, replies, started, state
    cdef public SessionStats stats

    @cython.locals(stats=SessionStats)
    cpdef receive_text(self, text)

    cpdef receive_binary(self, data)

    @cython.locals(stats=SessionStats)
    cpdef binary_media(self)

    cpdef _rebase(self, media)
