"""``mixmesh.core.conversion.to_python`` gives exactly what ``pyarrow.Array.to_pylist`` gives.

A differential test: hypothesis draws an Arrow type (scalars of every kind, time zones,
decimals, timestamps of every unit, nested lists, structs and maps), values for it with NULLs
at every level, then a slice or a chunking of the array; both conversions must agree value
by value *and type by type* (``1`` is not ``1.0``, a naive datetime is not an aware one, a
Decimal keeps its exponent, dict keys keep their order).
"""

from __future__ import annotations

import datetime
import decimal
import math
import typing as t

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixmesh.core.conversion import to_python

# --- comparing with types --------------------------------------------------------------


def assert_same(ours: t.Any, theirs: t.Any, path: str = "value") -> None:
    """Equal values of the same types, all the way down."""
    assert type(ours) is type(theirs), f"{path}: {type(ours).__name__} {ours!r} vs {type(theirs).__name__} {theirs!r}"
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), f"{path}: keys {list(ours)} vs {list(theirs)}"
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{path}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), f"{path}: length {len(ours)} vs {len(theirs)}"
        for position, (mine, other) in enumerate(zip(ours, theirs)):
            assert_same(mine, other, f"{path}[{position}]")
    elif isinstance(theirs, float) and math.isnan(theirs):
        assert math.isnan(ours), f"{path}: {ours!r} vs NaN"
    elif isinstance(theirs, decimal.Decimal):
        assert ours.as_tuple() == theirs.as_tuple(), f"{path}: {ours!r} vs {theirs!r}"
    elif isinstance(theirs, (datetime.datetime, datetime.time)):
        assert ours == theirs and ours.tzinfo == theirs.tzinfo, f"{path}: {ours!r} vs {theirs!r}"
        assert type(ours.tzinfo) is type(theirs.tzinfo), f"{path}: tzinfo {ours.tzinfo!r} vs {theirs.tzinfo!r}"
    else:
        assert ours == theirs, f"{path}: {ours!r} vs {theirs!r}"


def test_the_comparison_tells_types_apart() -> None:
    for ours, theirs in [
        (1, 1.0),
        (datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)),
        (decimal.Decimal("1.0"), decimal.Decimal("1.00")),
        ({"b": 1, "a": 2}, {"a": 2, "b": 1}),
        ([None], [0]),
        ([(1, 2)], [[1, 2]]),
    ]:
        with pytest.raises(AssertionError):
            assert_same(ours, theirs)


# --- Arrow types and values ------------------------------------------------------------

ZONES = (None, "UTC", "America/New_York", "Asia/Kathmandu", "+05:30")
FIELD_NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=4)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)


def _decimal_type(precision: int, scale: int) -> pa.DataType:
    return pa.decimal128(precision, scale)


LEAF_TYPES = st.one_of(
    st.sampled_from([pa.bool_(), pa.int8(), pa.int32(), pa.int64(), pa.uint16(), pa.uint64(), pa.float16(), pa.float32(), pa.float64()]),
    st.sampled_from([pa.string(), pa.large_string(), pa.binary(), pa.large_binary(), pa.date32(), pa.date64()]),
    st.sampled_from([pa.time32("s"), pa.time32("ms"), pa.time64("us"), pa.time64("ns"), pa.duration("ms")]),
    st.builds(pa.timestamp, st.sampled_from(["s", "ms", "us", "ns"]), st.sampled_from(ZONES)),
    st.integers(1, 30).flatmap(lambda precision: st.builds(_decimal_type, st.just(precision), st.integers(0, precision))),
)


def _struct_type(fields: t.List[t.Tuple[str, pa.DataType]]) -> pa.DataType:
    return pa.struct([pa.field(name, kind) for name, kind in fields])


def _nested(children: st.SearchStrategy[pa.DataType]) -> st.SearchStrategy[pa.DataType]:
    return st.one_of(
        st.builds(pa.list_, children),
        st.builds(pa.large_list, children),
        st.lists(st.tuples(FIELD_NAMES, children), max_size=4, unique_by=lambda field: field[0]).map(_struct_type),
        st.builds(pa.map_, st.sampled_from([pa.string(), pa.int32()]), children),
        st.builds(pa.list_, children, st.integers(1, 3)),  # fixed size: left to to_pylist
    )


TYPES = st.recursive(LEAF_TYPES, _nested, max_leaves=6)

DAYS = st.one_of(  # a few days that repeat (what the reuse of equal values is for), or any
    st.sampled_from([datetime.date(2024, 1, 1), datetime.date(1999, 12, 31), datetime.date(1970, 1, 1)]),
    st.dates(datetime.date(1900, 1, 1), datetime.date(2200, 12, 31)),
)
MOMENTS = st.one_of(
    st.sampled_from([datetime.datetime(2024, 3, 10, 2, 30), datetime.datetime(1969, 12, 31, 23, 59, 59, 999999)]),
    st.datetimes(datetime.datetime(1900, 1, 1), datetime.datetime(2200, 1, 1)),
)


def _time_of_day(unit: str) -> st.SearchStrategy[datetime.time]:
    times = st.times()
    if unit == "s":
        return times.map(lambda value: value.replace(microsecond=0))
    if unit == "ms":
        return times.map(lambda value: value.replace(microsecond=value.microsecond // 1000 * 1000))
    return times


def _decimals(kind: pa.Decimal128Type) -> st.SearchStrategy[decimal.Decimal]:
    largest = 10**kind.precision - 1
    return st.integers(-largest, largest).map(lambda digits: decimal.Decimal(f"{digits}e-{kind.scale}"))  # exact: no context rounding


def values_of(kind: pa.DataType) -> st.SearchStrategy[t.Any]:
    """Python values ``pa.array(..., type=kind)`` accepts, NULL among them."""
    return st.one_of(st.none(), _non_null(kind)) if not pa.types.is_map(kind) else st.one_of(st.none(), _non_null(kind))


def _non_null(kind: pa.DataType) -> st.SearchStrategy[t.Any]:
    if pa.types.is_boolean(kind):
        return st.booleans()
    if pa.types.is_integer(kind):
        bits = kind.bit_width
        low, high = (0, 2**bits - 1) if pa.types.is_unsigned_integer(kind) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return st.integers(low, high)
    if pa.types.is_floating(kind):
        return st.floats(width={pa.float16(): 16, pa.float32(): 32}.get(kind, 64))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return TEXT
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return st.binary(max_size=6)
    if pa.types.is_date(kind):
        return DAYS
    if pa.types.is_time(kind):
        return _time_of_day(kind.unit)
    if pa.types.is_duration(kind):
        return st.integers(-(10**12), 10**12).map(lambda ms: datetime.timedelta(milliseconds=ms))
    if pa.types.is_timestamp(kind):
        return MOMENTS
    if pa.types.is_decimal(kind):
        return _decimals(kind)
    if pa.types.is_map(kind):
        keys = st.integers(-5, 5) if pa.types.is_integer(kind.key_type) else TEXT
        pairs = st.lists(st.tuples(keys, values_of(kind.item_type)), max_size=3, unique_by=lambda pair: pair[0])
        return pairs
    if pa.types.is_fixed_size_list(kind):
        return st.lists(values_of(kind.value_type), min_size=kind.list_size, max_size=kind.list_size)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return st.lists(values_of(kind.value_type), max_size=4)
    if pa.types.is_struct(kind):
        return st.fixed_dictionaries({field.name: values_of(field.type) for field in kind})
    raise AssertionError(f"no values for {kind}")


@st.composite
def arrays(draw: st.DrawFn) -> t.Union[pa.Array, pa.ChunkedArray]:
    """An array of a drawn type, whole, sliced (offset != 0) or in chunks."""
    kind = draw(TYPES)
    values = draw(st.lists(values_of(kind), max_size=30))
    array = pa.array(values, type=kind)
    shape = draw(st.sampled_from(["whole", "slice", "chunks"]))
    if shape == "slice":
        start = draw(st.integers(0, len(array)))
        return array.slice(start, draw(st.integers(0, len(array) - start)))
    if shape == "chunks":
        cut = draw(st.integers(0, len(array)))
        return pa.chunked_array([array.slice(0, cut), array.slice(cut)], type=kind)
    return array


def assert_converts_as_to_pylist(array: t.Union[pa.Array, pa.ChunkedArray], maps_as_pydicts: t.Optional[str]) -> None:
    try:
        expected = array.to_pylist(maps_as_pydicts=maps_as_pydicts)
    except Exception as refusal:  # e.g. a nanosecond timestamp Python cannot hold
        with pytest.raises(type(refusal)):
            to_python(array, maps_as_pydicts=maps_as_pydicts)
        return
    assert_same(to_python(array, maps_as_pydicts=maps_as_pydicts), expected)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # a large array's repr
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(arrays(), st.sampled_from([None, "lossy", "strict"]))
def test_to_python_gives_what_to_pylist_gives(array: t.Union[pa.Array, pa.ChunkedArray], maps_as_pydicts: t.Optional[str]) -> None:
    assert_converts_as_to_pylist(array, maps_as_pydicts)


# --- targeted cases --------------------------------------------------------------------


def orders_per_customer(customers: int) -> pa.ListArray:
    """The benchmark's shape: per customer, a list of orders (a DOUBLE, a VARCHAR, a DATE),
    with NULL lists, NULL orders, NULL fields and empty lists among them."""
    orders = []
    for customer in range(customers):
        if customer % 17 == 0:
            orders.append(None)
            continue
        orders.append(
            [
                None
                if (customer + order) % 11 == 0
                else {
                    "totalprice": None if order % 7 == 0 else customer * 1.5 + order,
                    "orderstatus": ["F", "O", "P", None, "ü"][order % 5],
                    "orderdate": None if order % 9 == 0 else datetime.date(1992, 1, 1) + datetime.timedelta(days=(customer * order) % 40),
                }
                for order in range(customer % 16)
            ]
        )
    return pa.array(orders, type=pa.list_(pa.struct([("totalprice", pa.float64()), ("orderstatus", pa.string()), ("orderdate", pa.date32())])))


def test_lists_of_structs_as_the_benchmark_has_them() -> None:
    array = orders_per_customer(2000)
    assert_converts_as_to_pylist(array, None)
    assert_converts_as_to_pylist(array.slice(5, 1500), None)
    assert_converts_as_to_pylist(pa.chunked_array([array.slice(0, 700), array.slice(700)]), None)


REPEATED = {
    "date": [datetime.date(2024, 1, 1), datetime.date(1999, 12, 31), datetime.date(1970, 1, 1)],
    "aware timestamp": [datetime.datetime(2024, 3, 10, 7, 30, tzinfo=datetime.timezone.utc)] * 2 + [datetime.datetime(1960, 1, 1, tzinfo=datetime.timezone.utc)],
    "naive nanoseconds": [datetime.datetime(2024, 3, 10, 2, 30), datetime.datetime(1999, 1, 1), datetime.datetime(2000, 2, 29)],
    "time": [datetime.time(1, 2, 3, 4), datetime.time(0), datetime.time(23, 59, 59, 999999)],
    "decimal": [decimal.Decimal("1.500"), decimal.Decimal("-0.001"), decimal.Decimal("123456789.000")],
}
KINDS = {
    "date": pa.date32(), "aware timestamp": pa.timestamp("us", "America/New_York"), "naive nanoseconds": pa.timestamp("ns"),
    "time": pa.time64("us"), "decimal": pa.decimal128(12, 3),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_repeated_values_are_converted_once_and_equal_everywhere(kind: str) -> None:
    array = pa.array([REPEATED[kind][i % 3] for i in range(300)] + [None], type=KINDS[kind])
    converted = to_python(array)
    assert_same(converted, array.to_pylist())
    assert converted[0] is converted[3]  # the same object: converted once


def test_a_struct_with_a_repeated_field_name_fails_as_to_pylist_does() -> None:
    array = pa.StructArray.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    assert_converts_as_to_pylist(array, None)
    assert_converts_as_to_pylist(pa.array([[None]], type=pa.list_(array.type)), None)


def test_structs_without_fields_and_all_null_arrays() -> None:
    empty = pa.array([{}, None, {}], type=pa.struct([]))
    assert_converts_as_to_pylist(empty, None)
    assert to_python(empty)[0] is not to_python(empty)[2]
    assert_converts_as_to_pylist(pa.array([None, None], type=pa.list_(pa.struct([("a", pa.date32())]))), None)
    assert_converts_as_to_pylist(pa.array([], type=pa.list_(pa.int64())), None)


@pytest.mark.filterwarnings("ignore:Encountered key:UserWarning")  # the lossy conversion's
def test_strict_maps_with_a_repeated_key_fail_naming_the_key() -> None:
    array = pa.array([[("k", 1), ("k", 2)]], type=pa.map_(pa.string(), pa.int64()))
    assert_converts_as_to_pylist(array, "strict")
    assert_converts_as_to_pylist(array, "lossy")
    # Inside a struct, to_pylist reports it as a repeated field name (pyarrow's StructScalar
    # turns the map's KeyError into that ValueError); to_python keeps the map's own error.
    in_struct = pa.array([[{"m": [("k", 1), ("k", 2)]}]], type=pa.list_(pa.struct([("m", array.type)])))
    with pytest.raises(ValueError, match="duplicate field names"):
        in_struct.to_pylist(maps_as_pydicts="strict")
    with pytest.raises(KeyError, match="duplicate key was 'k'"):
        to_python(in_struct, maps_as_pydicts="strict")


def test_the_garbage_collector_is_back_on_after_a_conversion() -> None:
    import gc

    assert gc.isenabled()
    to_python(orders_per_customer(50))
    assert gc.isenabled()
    with pytest.raises(KeyError):
        to_python(pa.array([[("k", 1), ("k", 2)]], type=pa.map_(pa.string(), pa.int64())), maps_as_pydicts="strict")
    assert gc.isenabled()
