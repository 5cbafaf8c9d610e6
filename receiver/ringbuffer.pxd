# The compiled build of ringbuffer.py (see mediaclock.pxd): the ring's fields as struct members.
cdef class TrackBuffer:
    cdef public object _buf, _map, capacity, head

    cpdef write_lookup(self, table, codes, Py_ssize_t channel=*, Py_ssize_t channels=*)
