"""
Calls beside the stream path: the platform's actions and webhooks, the
HTTP listener that takes them, and the call-record store that ties a call's
webhooks, streams and recordings together.

``actions`` and ``webhooks`` are pure; ``db`` is the blocking SQLite layer,
``store`` runs it on threads, ``observer`` feeds stream lifecycle into it,
``answer`` serves the answer_url and ``listener`` is the HTTP port.
"""
