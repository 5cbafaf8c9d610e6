"""
Security at the edges: who may stream (``auth``), from where and how many
(``guard``), how fast and how big (``limits``), over which transport
(``tls``), and the address rules they share (``networks``).
"""
