# The compiled build of fastpath.py (see receiver/mediaclock.pxd): the frame reader as a C
# class, so a read goes from the event loop to the loop that cuts it with no Python frame
# and no attribute lookup. The connection class stays Python (it subclasses websockets').
cimport cython


cdef class FrameReader:
    cdef public bytearray buf
    cdef public bint dispatching, fast
    cdef public Py_ssize_t limit
    cdef public str state_attr
    cdef public object done, on_text, protocol, websockets_data_received

    cpdef bint is_open(self)
    cpdef feed(self, data)
    cpdef flush_to_websockets(self)

    @cython.locals(pos=Py_ssize_t, stop=Py_ssize_t, limit=Py_ssize_t, status=int, is_open=bint)
    cpdef consume(self, buf)

    cpdef _fall_back(self, buf, Py_ssize_t pos)
    cpdef _keep(self, buf, Py_ssize_t pos)
    cpdef _finish(self, result, exc)
