"""Feast's ``Value`` class loaded alone: the same class as Feast's, without Feast's import."""

from __future__ import annotations

import json
import sys

from features.value_proto import VALUE_MODULE, value_message
from tests.conftest import fresh_python


def _fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a new interpreter and return the JSON it prints last."""
    out = fresh_python(code)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_loads_without_importing_feast_and_feast_reuses_it() -> None:
    got = _fresh(
        """
        import json, sys
        from features.value_proto import value_message
        Value = value_message()
        alone = "feast" in sys.modules
        blob = Value(double_val=1.5).SerializeToString()
        import feast  # the whole package, after the class was loaded alone
        from feast.protos.feast.types import Value_pb2
        from feast.protos.feast.types.Value_pb2 import Value as FeastValue
        from feast.type_map import python_values_to_proto_values
        from feast.value_type import ValueType
        [proto] = python_values_to_proto_values([1.5], ValueType.DOUBLE)
        print(json.dumps({
            "feast_imported_before": alone,
            "same_class": FeastValue is Value and Value_pb2.Value is Value,
            "feast_encodes_the_same": proto.SerializeToString() == blob,
            "isinstance": isinstance(proto, Value),
            "again": value_message() is Value,
        }))
        """
    )
    assert got == {
        "feast_imported_before": False,
        "same_class": True,
        "feast_encodes_the_same": True,
        "isinstance": True,
        "again": True,
    }


def test_uses_feasts_module_once_feast_is_imported() -> None:
    import feast  # noqa: F401
    from feast.protos.feast.types.Value_pb2 import Value

    assert value_message() is Value
    assert sys.modules[VALUE_MODULE].Value is Value


def test_the_online_client_does_not_import_feast() -> None:
    got = _fresh(
        """
        import json, sys
        import serving.app  # what a serving worker imports before its lifespan runs
        from features.online import DecodedValues
        from features.value_proto import value_message
        decoded = DecodedValues(value_message())
        blob = value_message()(int64_val=7).SerializeToString()
        print(json.dumps({"value": decoded[blob], "feast": "feast" in sys.modules}))
        """
    )
    assert got == {"value": 7, "feast": False}
