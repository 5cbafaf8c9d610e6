# The compiled build of twilio.py (see receiver/mediaclock.pxd). Compiled, parse_media_text
# runs with no Python frame of its own (callgrind: MiniVoice the same, Twilio -7%: its counters'
# string checks become C calls), and _decimal reads a counter's digits in C.
cimport cython


@cython.locals(n=Py_ssize_t, value="long long", ch=Py_UCS4)
cdef object _decimal(str text)
