"""The machinery of the import-only stand-ins in this folder (``torchvision``, ``torchaudio``).

ComfyUI's core imports these packages at module import time, and transformers / diffusers import
names from them (``torchvision.transforms.InterpolationMode``, ``torchvision.io``, ...) whenever a
package of that name can be found. :func:`install` makes every ``<package>.*`` module and name
resolve to a stub: importing and referring to them works, calling anything raises
NotImplementedError. The module name carries the pack prefix so that it shadows nothing.
"""

import importlib.abc
import importlib.machinery
import sys
import types


class _Stub:
    """Any name inside a stand-in: attribute access gives further stubs, calling refuses."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Stub(f"{self._name}.{attribute}")

    def __call__(self, *args, **kwargs):
        package = self._name.split(".")[0]
        raise NotImplementedError(f"{self._name}: {package} is an import-only stand-in in the test host")

    def __repr__(self) -> str:
        return f"<stand-in {self._name}>"


class _StubModule(types.ModuleType):
    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Stub(f"{self.__name__}.{attribute}")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds every ``<package>.<anything>`` submodule as an empty stub package."""

    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(self.package + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def install(package: str) -> None:
    """Resolve every submodule of ``package`` (the stand-in's own name) to a stub module."""
    if not any(isinstance(f, _StubFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(_StubFinder(package))


def module_getattr(package: str):
    """A module-level ``__getattr__`` for the stand-in package itself: every name is a stub."""

    def __getattr__(attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Stub(f"{package}.{attribute}")

    return __getattr__
