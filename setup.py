"""Build the compiled core (sensor._fastpath); everything else is in pyproject.toml."""

from setuptools import Extension, setup

NATIVE = "sensor/_native/"

setup(
    ext_modules=[
        Extension(
            "sensor._fastpath",
            sources=[NATIVE + name for name in ("module.c", "walk.c", "decode.c", "tracker.c", "content.c", "windows.c", "format.c", "ring.c")],
            depends=[NATIVE + "fastpath.h", NATIVE + "ring.h"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration", "-fno-strict-aliasing"],
        )
    ]
)
