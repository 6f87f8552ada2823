"""cka's compiled core, chosen for this processor.

The package holds the same core compiled for more than one instruction-set target: ``_core_baseline`` (the
platform's baseline, or ``-march=native`` in a build with ``CKA_NATIVE``) and, on x86-64, ``_core_x86_64_v3``
(AVX2 and FMA: Eigen's products at about twice the baseline's rate). This module imports the best one the
processor runs — asked of ``cka._cpu`` first, since a core built for instructions the processor lacks would
end the interpreter with SIGILL — and re-exports its names; ``built_for`` says which was taken. The
environment variable ``CKA_CPU=baseline`` (or ``x86-64-v3``) forces one; ``auto``, the default, picks.
Classes report ``cka._core`` as their module, so a pickle made on one processor loads on any other.
"""

import importlib as _importlib
import importlib.util as _importlib_util
import os as _os

from . import _cpu

_TARGETS = {"baseline": "_core_baseline", "x86-64-v3": "_core_x86_64_v3"}


def _pick() -> str:
    wanted = _os.environ.get("CKA_CPU", "auto") or "auto"
    if wanted != "auto" and wanted not in _TARGETS:
        raise ImportError(f"cka: CKA_CPU={wanted!r} is not known; use 'auto', 'baseline' or 'x86-64-v3'")
    built = _importlib_util.find_spec(f"{__package__}._core_x86_64_v3") is not None
    if wanted == "x86-64-v3":
        if not built:
            raise ImportError("cka: CKA_CPU='x86-64-v3', but this build of cka has no x86-64-v3 core "
                              "(not an x86-64 build, or built with CKA_NATIVE)")
        if not _cpu.x86_64_v3():
            raise ImportError("cka: CKA_CPU='x86-64-v3', but this processor or OS lacks x86-64-v3 "
                              "(AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE); unset CKA_CPU")
        return wanted
    if wanted == "auto" and built and _cpu.x86_64_v3():
        return "x86-64-v3"
    return "baseline"


_module = _importlib.import_module(f"{__package__}.{_TARGETS[_pick()]}")
for _name, _value in vars(_module).items():
    if _name.startswith("__") and _name not in ("__version__",):
        continue
    if isinstance(_value, type):
        _value.__module__ = __name__
    globals()[_name] = _value
del _name, _value, _module, _pick, _TARGETS, _importlib, _importlib_util, _os
