"""The package's metadata agrees with the C++ library, and its stubs name every public function."""
import os
import re

import cka
from cka import _core

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_version_agrees_with_the_header_and_pyproject():
    header = open(os.path.join(ROOT, "include", "cka", "version.hpp")).read()
    parts = [re.search(rf"#define CKA_VERSION_{p} (\d+)", header).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
    assert cka.__version__ == ".".join(parts)
    assert f'version = "{cka.__version__}"' in open(os.path.join(ROOT, "pyproject.toml")).read()


def test_stubs_cover_the_core():
    stubs = open(os.path.join(os.path.dirname(cka.__file__), "_core.pyi")).read()
    for name in dir(_core):
        if not name.startswith("_"):
            assert re.search(rf"^((def|class) {name}\b|{name}: )", stubs, re.M), name
    for name in cka.__all__:
        assert hasattr(cka, name), name
