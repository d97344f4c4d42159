"""The package's one C extension, optional (see ``_clone_spawn.c``); the rest of the build is
declared in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("starforge_daemon.runtime.local._clone_spawn",
                             ["starforge_daemon/runtime/local/_clone_spawn.c"], optional=True)])
