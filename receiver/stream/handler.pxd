# The compiled build of handler.py (see receiver/mediaclock.pxd): the handler as a C class,
# its session and pipeline typed, so a media message goes from the fast path's callback to
# the session's and the pipeline's media calls as C calls, reading struct members.
from receiver.session cimport StreamSession
from receiver.stream.pipeline cimport StreamPipeline


cdef class StreamHandler:
    cdef public StreamSession session
    cdef public StreamPipeline pipeline
    cdef public long long received
    cdef public bint first_media
    cdef public int ack_misses
    cdef public object closed_by, connected_at, counted, ended, handshake, limits, log, unauthenticated, ws
    cdef public object general, on_discontinuity, on_event

    cpdef on_message(self, message)
