"""Build the optional C extension ``trio_brod.protocol._speedups``.

Everything else about the package is declared in pyproject.toml; this file exists only because
setuptools needs code to declare an extension module and to decide what a failed compile means.

The extension is an accelerator, not a requirement: ``trio_brod.protocol.records`` falls back
to its pure-Python codec when it is missing. So a machine without a C compiler (or Python
headers) still installs trio-brod, with a warning saying what was lost. Set
``TRIO_BROD_REQUIRE_SPEEDUPS=1`` to make a failed compile fail the install instead: the test
session does, so that CI notices a broken extension rather than quietly testing the fallback.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

REQUIRE_VARIABLE = "TRIO_BROD_REQUIRE_SPEEDUPS"


def _speedups_required() -> bool:
    return os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """``build_ext`` with compiler warnings on, and a clear message when an optional build fails.

    Whether a failure is an error is the extension's ``optional`` flag (setuptools then also
    skips its missing file when an editable install copies the built modules into the tree).
    """

    def build_extension(self, ext: Extension) -> None:
        """Compile ``ext``; if that fails and it is optional, warn and go on."""
        if self.compiler.compiler_type == "unix":
            # For the compilers we test with (gcc, clang); the code compiles without warnings.
            ext.extra_compile_args = [*ext.extra_compile_args, "-Wall", "-Wextra"]
        try:
            super().build_extension(ext)
        except (CCompilerError, CompileError, ExecError, LinkError, PlatformError) as exc:
            if not ext.optional:
                raise
            message = (
                f"could not build the C extension {ext.name} ({exc}); trio-brod will use its "
                f"pure-Python record codec, which decodes about 5x slower. Install a C compiler "
                f"and the Python headers to build it, or set {REQUIRE_VARIABLE}=1 to make this "
                f"an error."
            )
            self.warn(message)


setup(
    ext_modules=[
        Extension(
            "trio_brod.protocol._speedups",
            sources=["trio_brod/protocol/_speedups.c"],
            optional=not _speedups_required(),
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
