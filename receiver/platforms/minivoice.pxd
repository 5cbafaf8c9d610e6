# The compiled build of minivoice.py (see receiver/mediaclock.pxd): nothing to declare. Its media
# messages' typed decoder is _typed.py's (compiled by _typed.pxd); compiled, the general parser
# reads a message's fields with no Python frame per reader.
