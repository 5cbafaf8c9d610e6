"""The compiled part of the media path (receiver/speedups.py says what it is).

- ``receiver/_native.pyx``: the innermost loops, written for Cython.
- ``receiver/mediaclock.py`` and ``receiver/ringbuffer.py``, compiled from their own
  source, with the ``.pxd`` beside each declaring their classes' fields as C struct
  members (the same files run as Python where nothing was compiled).

Everything else is in ``pyproject.toml``. The extension is optional: without a C
compiler the install still succeeds and the same functions run as pure Python
(``receiver/_pure.py``); ``receiver --version`` says which build is installed.
"""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - Cython is in [build-system] requires
    ext_modules = []
else:
    ext_modules = cythonize(
        [
            Extension(name, [source], optional=True)
            for name, source in (
                ("receiver._native", "receiver/_native.pyx"),
                ("receiver.ringbuffer", "receiver/ringbuffer.py"),
                ("receiver.mediaclock", "receiver/mediaclock.py"),
                ("receiver.stream.pipeline", "receiver/stream/pipeline.py"),
            )
        ],
        language_level=3,
        quiet=True,
        # The .py files' annotations are for mypy; C types come from the .pxd files alone.
        compiler_directives={"annotation_typing": False},
    )

setup(ext_modules=ext_modules)
