# The compiled build of minivoice.py (see receiver/mediaclock.pxd): nothing to declare. Compiled,
# parse_media_text runs with no Python frame of its own (callgrind: MiniVoice the same, Twilio
# -7%: its counters' string checks become C calls).
