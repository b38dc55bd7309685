"""The one C extension: the redactor's guard phase (src/tradeguard/secrets/guards.py).

Everything else about the package is in pyproject.toml. The extension is optional: without a
compiler the build goes on, the same guard runs in Python (slower), and `tradeguard doctor`
reports which one is in use.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tradeguard.secrets._guard",
            sources=["src/tradeguard/secrets/_guard.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-fstack-protector-strong"],
        )
    ]
)
