# The compiled build of counters.py (see receiver/mediaclock.pxd): the base of the counter
# classes as a C class, so theirs (mediaclock.pxd, session.pxd) can derive from it.


cdef class Counters:
    pass
