"""Import-only stand-in for torchvision inside the test host (see ../README.md).

ComfyUI's core imports torchvision at module import time, and transformers / diffusers import
names from it (``torchvision.transforms.InterpolationMode``, ``torchvision.io``, ...) whenever a
package of that name can be found. Every ``torchvision.*`` module and name therefore resolves to a
stub: importing and referring to them works, calling anything raises NotImplementedError.
"""

import importlib.abc
import importlib.machinery
import sys
import types

__version__ = "0.0.0+stand-in"


class _Stub:
    """Any name inside the stand-in: attribute access gives further stubs, calling refuses."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Stub(f"{self._name}.{attribute}")

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(f"{self._name}: torchvision is an import-only stand-in in the test host")

    def __repr__(self) -> str:
        return f"<stand-in {self._name}>"


class _StubModule(types.ModuleType):
    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Stub(f"{self.__name__}.{attribute}")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds every ``torchvision.<anything>`` submodule as an empty stub package."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(__name__ + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


if not any(isinstance(finder, _StubFinder) for finder in sys.meta_path):
    sys.meta_path.append(_StubFinder())


def __getattr__(attribute: str):
    if attribute.startswith("__"):
        raise AttributeError(attribute)
    return _Stub(f"{__name__}.{attribute}")
