"""Build script: compiles the streaming token engine unless told not to.

``XMPP_NO_EXTENSIONS=1`` at build time skips the compiled engine; the package
then runs on its pure-Python twin.  Everything else lives in pyproject.toml.
"""

import os
import platform

from setuptools import Extension, setup


def _extensions() -> list:
    if os.environ.get("XMPP_NO_EXTENSIONS"):
        return []
    if platform.python_implementation() != "CPython":
        return []
    from Cython.Build import cythonize

    ext = Extension(
        "xmpp._tokens",
        ["src/xmpp/_tokens.pyx"],
        include_dirs=["src/xmpp"],
        extra_compile_args=["-O2"],
    )
    return cythonize(
        [ext],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    )


setup(ext_modules=_extensions())
