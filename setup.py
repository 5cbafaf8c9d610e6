"""The compiled part of the media path (receiver/speedups.py says what it is).

- ``receiver/_native.pyx``: the innermost loops, written for Cython.
- every module with a ``.pxd`` beside its ``.py`` (``receiver.COMPILED_SOURCES``: the media
  clock, the ring buffers, the session, the MiniVoice and Twilio parsers, the fast path's frame
  reader, the stream handler, the stream pipeline), compiled from its own source, the ``.pxd``
  declaring its classes' fields as C struct members (the same files run as Python where
  nothing was compiled).

Everything else is in ``pyproject.toml``. The extension is optional: without a C
compiler the install still succeeds and the same functions run as pure Python
(``receiver/_pure.py``); ``receiver --version`` says which build is installed.
"""

from pathlib import Path

from setuptools import Extension, setup

# A .pxd beside a module's .py is what asks for the module to be compiled.
SOURCES = [("receiver._native", "receiver/_native.pyx")] + [
    (".".join(pxd.with_suffix("").parts), str(pxd.with_suffix(".py")))
    for pxd in sorted(Path("receiver").rglob("*.pxd"))
]

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - Cython is in [build-system] requires
    ext_modules = []
else:
    ext_modules = cythonize(
        [Extension(name, [source], optional=True) for name, source in SOURCES],
        language_level=3,
        quiet=True,
        # The .py files' annotations are for mypy; C types come from the .pxd files alone.
        compiler_directives={"annotation_typing": False},
    )

setup(ext_modules=ext_modules)
