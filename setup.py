"""The compiled part of the media path: ``receiver/_native.pyx`` (receiver/speedups.py says what it is).

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
        [Extension("receiver._native", ["receiver/_native.pyx"], optional=True)], language_level=3, quiet=True
    )

setup(ext_modules=ext_modules)
