"""Feast's ``Value`` message class, without importing the rest of Feast.

The online clients decode the values Feast wrote with Feast's own generated protobuf class,
``feast.protos.feast.types.Value_pb2.Value``. Importing it the usual way runs
``feast/__init__.py`` first, which imports the feature store, every data source and pandas,
for one message class. In three alternated starts on the development machine (bytecode
compiled), a serving worker was ready in 6.7–7.3 s with the class loaded alone, 11.3–12.7 s
without.

:func:`value_message` loads the generated module from Feast's installed package on its own
and registers it under its real name in :data:`sys.modules`. Python then reuses that module
object wherever Feast imports it later (``from feast.protos.feast.types.Value_pb2 import
Value``, ``from feast.protos.feast.types import Value_pb2``), so the process has one ``Value``
class and the file is added to protobuf's descriptor pool once. Where Feast is already
imported, the usual import is used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["VALUE_MODULE", "value_message"]

#: The generated module's name in Feast's package.
VALUE_MODULE = "feast.protos.feast.types.Value_pb2"

_lock = threading.Lock()


def value_message() -> Any:
    """Feast's ``Value`` protobuf message class.

    Raises
    ------
    ModuleNotFoundError
        When Feast is not installed.
    """
    with _lock:
        module = sys.modules.get(VALUE_MODULE)
        if module is None:
            module = _load() if "feast" not in sys.modules else None
        if module is None:
            module = importlib.import_module(VALUE_MODULE)
        return module.Value


def _load() -> Any:
    """The generated module, executed alone, or ``None`` when it is not where expected."""
    spec = importlib.util.find_spec("feast")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'feast'", name="feast")
    path = Path(next(iter(spec.submodule_search_locations)), *VALUE_MODULE.split(".")[1:])
    path = path.with_suffix(".py")
    if not path.is_file():
        return None
    own = importlib.util.spec_from_file_location(VALUE_MODULE, path)
    if own is None or own.loader is None:
        return None
    module = importlib.util.module_from_spec(own)
    sys.modules[VALUE_MODULE] = module
    try:
        own.loader.exec_module(module)
    except BaseException:
        del sys.modules[VALUE_MODULE]
        raise
    return module
