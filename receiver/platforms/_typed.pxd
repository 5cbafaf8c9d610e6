# The compiled build of _typed.py (see receiver/mediaclock.pxd). Compiled, a format's media
# parser runs with no Python frame of its own, a counter's string checks are C calls, and
# _decimal reads its digits in C (callgrind: Twilio -7% when this was twilio.pxd).
cimport cython


cpdef object media_event(object track, object chunk, object timestamp, object payload, object sequence)


@cython.locals(n=Py_ssize_t, value="long long", ch=Py_UCS4)
cdef object _decimal(str text)
