"""Schema creation and the interval-replace primitive, on SQLite and MariaDB."""

from __future__ import annotations

import pytest
from helpers import dump, utc
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.writes import replace_interval

TABLES = {
    "price_data_real", "technical_indicators", "macro_indicators", "crypto_onchain_data",
    "crypto_news", "crypto_news_mentions", "crypto_sentiment_data", "ml_features_materialized",
}


def _price(symbol, hour, price, day=1):
    return {"symbol": symbol, "time": utc(2026, 1, day, hour), "price": price,
            "market_cap": price * 10, "total_volume": None, "source": "sandbox-synthetic"}


def test_create_all_is_idempotent_and_complete(engine):
    schema.create_all(engine)  # the fixture already ran it once
    schema.create_all(engine)
    inspector = inspect(engine)
    assert TABLES <= set(inspector.get_table_names())
    assert "onchain_metrics" in inspector.get_view_names()
    pk = inspector.get_pk_constraint("ml_features_materialized")["constrained_columns"]
    assert pk == ["symbol", "time"]
    indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes("ml_features_materialized")}
    assert ("time",) in indexed
    with engine.connect() as conn:  # the view is queryable
        assert conn.execute(text("SELECT COUNT(*) FROM onchain_metrics")).scalar_one() == 0


def test_primary_key_rejects_duplicates(engine):
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(schema.price_data_real.insert(), [_price("BTC", 0, 1.0), _price("BTC", 0, 2.0)])
    assert dump(engine, schema.price_data_real) == []


def test_replace_interval_replaces_exactly_its_scope(engine):
    table = schema.price_data_real
    before = [_price("BTC", 23, 1.0, day=1), _price("BTC", 0, 2.0, day=2), _price("ETH", 0, 3.0, day=2),
              _price("BTC", 0, 4.0, day=3)]
    with engine.begin() as conn:
        conn.execute(table.insert(), before)

    written = replace_interval(engine, table, [_price("BTC", 5, 9.0, day=2)], time_column="time",
                               start=utc(2026, 1, 2), end=utc(2026, 1, 3), keys={"symbol": ["BTC"]})

    assert written == 1
    rows = {(r[0], r[1].day, r[1].hour): r[2] for r in dump(engine, table)}
    # day-1 and day-3 rows and the other symbol survive; BTC's day-2 row is replaced.
    assert rows == {("BTC", 1, 23): 1.0, ("BTC", 2, 5): 9.0, ("ETH", 2, 0): 3.0, ("BTC", 3, 0): 4.0}


def test_replace_interval_refuses_rows_outside_scope_and_touches_nothing(engine):
    table = schema.price_data_real
    with engine.begin() as conn:
        conn.execute(table.insert(), [_price("BTC", 0, 1.0, day=2)])
    before = dump(engine, table)
    with pytest.raises(ValueError, match="outside"):
        replace_interval(engine, table, [_price("BTC", 0, 5.0, day=3)], time_column="time",
                         start=utc(2026, 1, 2), end=utc(2026, 1, 3))
    with pytest.raises(ValueError, match="outside the keys"):
        replace_interval(engine, table, [_price("SOL", 1, 5.0, day=2)], time_column="time",
                         start=utc(2026, 1, 2), end=utc(2026, 1, 3), keys={"symbol": ["BTC"]})
    with pytest.raises(ValueError, match="empty or inverted"):
        replace_interval(engine, table, [], time_column="time", start=utc(2026, 1, 3), end=utc(2026, 1, 2))
    assert dump(engine, table) == before


def test_failed_insert_rolls_back_the_delete(engine):
    table = schema.price_data_real
    with engine.begin() as conn:
        conn.execute(table.insert(), [_price("BTC", 0, 1.0, day=2), _price("BTC", 1, 2.0, day=2)])
    before = dump(engine, table)
    duplicate = [_price("BTC", 3, 7.0, day=2), _price("BTC", 3, 8.0, day=2)]
    with pytest.raises(IntegrityError):
        replace_interval(engine, table, duplicate, time_column="time", start=utc(2026, 1, 2), end=utc(2026, 1, 3))
    assert dump(engine, table) == before


def test_nan_is_stored_as_null(engine):
    import pandas as pd

    rows = pd.DataFrame([{**_price("BTC", 0, 1.0), "market_cap": float("nan")}])
    replace_interval(engine, schema.price_data_real, rows, time_column="time",
                     start=utc(2026, 1, 1), end=utc(2026, 1, 2))
    (row,) = dump(engine, schema.price_data_real)
    assert row[3] is None  # market_cap


def test_dataframe_rows_convert_like_dict_rows():
    """The vectorised DataFrame path gives exactly what the per-value path gives: naive UTC
    datetimes, NaN/NaT as NULL, Python scalars, every table column present."""
    import numpy as np
    import pandas as pd

    from cryptoetl.warehouse.records import to_records as _records

    frame = pd.DataFrame({
        "symbol": ["BTC", "ETH"],
        "time": pd.to_datetime(["2026-01-01T01:00+01:00", "2026-01-01T05:00Z"], utc=True),
        "price": [1.5, 2.0], "market_cap": [np.nan, 3.0], "source": ["x", None],
        "total_volume": np.array([7, 8], dtype="int64"),
    })
    vectorised = _records(frame, schema.price_data_real)
    per_value = _records(frame.to_dict("records"), schema.price_data_real)
    assert vectorised == per_value
    assert vectorised[0]["time"].tzinfo is None and vectorised[0]["time"].hour == 0
    assert vectorised[0]["market_cap"] is None and vectorised[1]["source"] is None
    assert type(vectorised[0]["total_volume"]) is int and type(vectorised[0]["price"]) is float


@pytest.mark.mysql
def test_mysql_bulk_path_writes_exactly_what_the_generic_path_writes(mysql_engine):
    """DataFrames on MySQL take a column-wise VALUES path; it must store the same bits (doubles
    round-trip exactly, NaN is NULL), check the scope the same way, and fall back for odd text."""
    import numpy as np
    import pandas as pd

    from cryptoetl.warehouse import mysql_bulk as io

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "symbol": ["BTC"] * 48 + ["ETH"] * 48,
        "time": list(pd.date_range("2026-01-01", periods=48, freq="h", tz="UTC")) * 2,
        "price": rng.lognormal(5, 2, 96), "market_cap": np.where(rng.random(96) < 0.2, np.nan, rng.random(96) * 1e12),
        "total_volume": rng.random(96) * 1e-300, "source": "sandbox-synthetic",
    })
    keys = {"symbol": ["BTC", "ETH"]}
    scope = {"time_column": "time", "start": utc(2026, 1, 1), "end": utc(2026, 1, 3), "keys": keys}
    assert io._mysql_values(frame, schema.price_data_real, "time", utc(2026, 1, 1).replace(tzinfo=None),
                            utc(2026, 1, 3).replace(tzinfo=None), scope["keys"]) is not None  # the fast path is taken
    replace_interval(mysql_engine, schema.price_data_real, frame, **scope)
    fast = dump(mysql_engine, schema.price_data_real)
    replace_interval(mysql_engine, schema.price_data_real, frame.to_dict("records"), **scope)
    assert dump(mysql_engine, schema.price_data_real) == fast and len(fast) == 96
    assert sum(r[3] is None for r in fast) == int(frame["market_cap"].isna().sum())

    with pytest.raises(ValueError, match="outside"):
        replace_interval(mysql_engine, schema.price_data_real, frame, time_column="time",
                         start=utc(2026, 1, 1), end=utc(2026, 1, 2), keys={"symbol": ["BTC", "ETH"]})
    assert dump(mysql_engine, schema.price_data_real) == fast
    odd = frame.assign(source="it's, 100%")  # quote, comma, percent: the driver escapes it instead
    replace_interval(mysql_engine, schema.price_data_real, odd, **scope)
    assert {r[5] for r in dump(mysql_engine, schema.price_data_real)} == {"it's, 100%"}


@pytest.mark.mysql
def test_mysql_fast_read_returns_what_sqlalchemy_returns(mysql_engine):
    import pandas as pd
    from sqlalchemy import select

    from cryptoetl.warehouse.reads import read_frame

    rows = [{"symbol": s, "time": utc(2026, 1, 1, h), "price": 1.0 / (h + 1), "market_cap": None if h % 3 else 2.5,
             "source": "coingecko"} for s in ("ETH", "BTC", "SOL") for h in range(10)]
    replace_interval(mysql_engine, schema.price_data_real, rows, time_column="time", start=utc(2026, 1, 1),
                     end=utc(2026, 1, 2))
    got = read_frame(mysql_engine, schema.price_data_real, time_column="time", start=utc(2026, 1, 1, 2),
                     end=utc(2026, 1, 1, 8), symbols=["BTC", "ETH"])
    p = schema.price_data_real
    with mysql_engine.connect() as conn:
        want = conn.execute(select(p).where(p.c.time >= utc(2026, 1, 1, 2).replace(tzinfo=None),
                                            p.c.time < utc(2026, 1, 1, 8).replace(tzinfo=None),
                                            p.c.symbol.in_(["BTC", "ETH"])).order_by(p.c.symbol, p.c.time)).all()
    assert len(got) == 12 and list(got["symbol"][:1]) == ["BTC"]
    assert [(r.symbol, r.time.to_pydatetime().replace(tzinfo=None), r.price, None if pd.isna(r.market_cap)
             else r.market_cap) for r in got.itertuples()] == [(w.symbol, w.time, w.price, w.market_cap) for w in want]


def _price_frame(symbols=("BTC", "ETH", "SOL"), hours=48, seed=5):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = len(symbols) * hours
    return pd.DataFrame({
        "symbol": [s for s in symbols for _ in range(hours)],
        "time": list(pd.date_range("2026-01-01", periods=hours, freq="h", tz="UTC")) * len(symbols),
        "price": rng.lognormal(5, 2, n), "market_cap": np.where(rng.random(n) < 0.2, np.nan, rng.random(n) * 1e12),
        "total_volume": rng.random(n) * 1e-300, "source": "sandbox-synthetic",
    })


def _seed_scope(engine):
    """Rows the replacement must replace (in scope, ADA has no new rows) or keep (outside scope)."""
    stale = [_price(s, h, 7.0, day=d) for s in ("BTC", "ETH", "SOL", "ADA") for d in (1, 2) for h in (0, 5)]
    keep = [_price("BTC", 0, 8.0, day=3), _price("DOGE", 0, 9.0, day=1)]
    with engine.begin() as conn:
        conn.execute(schema.price_data_real.insert(), stale + keep)


SCOPE = {"time_column": "time", "start": utc(2026, 1, 1), "end": utc(2026, 1, 3)}
SYMBOLS = ["BTC", "ETH", "SOL", "ADA"]


def _by_symbol(frame, *symbols):
    return frame[frame["symbol"].isin(symbols)]


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql),
                        pytest.param("mysql-prefetch", marks=pytest.mark.mysql)])
def parts_backend(request):
    """(engine, prefetch): both backends, and MySQL with the parts produced in a background thread."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_engine"), False
    return request.getfixturevalue("mysql_engine"), request.param == "mysql-prefetch"


def test_replace_interval_parts_writes_what_one_replace_writes(parts_backend):
    """Streaming the replacement part by part (any split of the keys) leaves exactly the rows
    one replace_interval leaves: in-scope rows replaced, stale ones gone, others kept."""
    from cryptoetl.warehouse.writes import replace_interval_parts

    engine, prefetch = parts_backend
    table = schema.price_data_real
    frame = _price_frame()
    _seed_scope(engine)
    assert replace_interval(engine, table, frame, keys={"symbol": SYMBOLS}, **SCOPE) == len(frame)
    once = dump(engine, table)
    assert len(once) == len(frame) + 2

    for split in ([["BTC"], ["ETH", "SOL"], ["ADA"]], [["ADA", "SOL"], ["BTC", "ETH"]], [[s] for s in SYMBOLS]):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM price_data_real"))
        _seed_scope(engine)
        parts = (({"symbol": group}, _by_symbol(frame, *group)) for group in split)
        written = replace_interval_parts(engine, table, parts, prefetch=prefetch, **SCOPE)
        assert written == len(frame) and dump(engine, table) == once, split


def _failing_parts(frame, failure):
    yield {"symbol": ["BTC"]}, _by_symbol(frame, "BTC")
    if failure == "raises":
        raise RuntimeError("compute failed")
    if failure == "outside keys":
        yield {"symbol": ["ETH"]}, _by_symbol(frame, "ETH", "SOL")
    if failure == "overlap":
        yield {"symbol": ["ETH", "BTC"]}, _by_symbol(frame, "ETH")
    if failure == "duplicate rows":
        yield {"symbol": ["ETH"]}, _concat(_by_symbol(frame, "ETH"), _by_symbol(frame, "ETH").iloc[:1])


def _concat(*frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("failure", ["raises", "outside keys", "overlap", "duplicate rows"])
def test_replace_interval_parts_failure_keeps_every_previous_row(parts_backend, failure):
    """One transaction: a failure in a later part (an exception from the producer, a row outside
    its part's scope, overlapping parts, a failing INSERT) also undoes the earlier parts."""
    from sqlalchemy.exc import IntegrityError

    from cryptoetl.warehouse.writes import replace_interval_parts

    engine, prefetch = parts_backend
    _seed_scope(engine)
    before = dump(engine, schema.price_data_real)
    expected = {"raises": RuntimeError, "outside keys": ValueError, "overlap": ValueError,
                "duplicate rows": IntegrityError}[failure]
    with pytest.raises(expected):
        replace_interval_parts(engine, schema.price_data_real, _failing_parts(_price_frame(), failure),
                               prefetch=prefetch, **SCOPE)
    assert dump(engine, schema.price_data_real) == before


def test_a_part_without_keys_must_be_the_only_part(engine):
    from cryptoetl.warehouse.writes import replace_interval_parts

    frame = _price_frame()
    _seed_scope(engine)
    before = dump(engine, schema.price_data_real)
    with pytest.raises(ValueError, match="overlap"):
        replace_interval_parts(engine, schema.price_data_real,
                               [({"symbol": ["BTC"]}, _by_symbol(frame, "BTC")), (None, _by_symbol(frame, "ETH"))],
                               **SCOPE)
    assert dump(engine, schema.price_data_real) == before


def test_read_frame_selects_columns(engine):
    from cryptoetl.warehouse.reads import read_frame

    frame = _price_frame()
    replace_interval(engine, schema.price_data_real, frame, keys={"symbol": SYMBOLS}, **SCOPE)
    got = read_frame(engine, schema.price_data_real, time_column="time", start=utc(2026, 1, 1, 5),
                     end=utc(2026, 1, 2), symbols=["SOL", "BTC"], columns=("symbol", "time", "price"))
    assert list(got.columns) == ["symbol", "time", "price"]
    assert str(got["time"].dtype) == "datetime64[us, UTC]"
    want = frame[frame["symbol"].isin(["BTC", "SOL"]) & (frame["time"] >= "2026-01-01 05:00Z")
                 & (frame["time"] < "2026-01-02 00:00Z")].sort_values(["symbol", "time"])
    assert list(got.itertuples(index=False)) == list(want[["symbol", "time", "price"]].itertuples(index=False))


@pytest.mark.mysql
def test_mysql_bulk_path_stores_every_double_exactly(mysql_engine):
    """The VALUES text of the fast path reads back as the very same doubles (bit for bit): any
    exponent, subnormals, the extremes, 17 significant digits; NaN as NULL."""
    import numpy as np
    import pandas as pd

    from cryptoetl.warehouse import mysql_bulk as io

    rng = np.random.default_rng(11)
    n = 2000
    values = rng.normal(0, 1, n) * 10.0 ** rng.integers(-307, 308, n)
    values[:8] = [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308, 0.1,
                  1 / 3, 123456789012345678.0, np.nan]
    frame = pd.DataFrame({"symbol": "BTC", "time": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
                          "close": values, **{c: rng.permutation(values) for c in schema.TECHNICAL_COLUMNS}})
    frame["close"] = frame["close"].fillna(1.0)  # NOT NULL
    scope = {"time_column": "time", "start": utc(2026, 1, 1), "end": utc(2026, 6, 1), "keys": {"symbol": ["BTC"]}}
    assert io._mysql_values(frame, schema.technical_indicators, "time", utc(2026, 1, 1).replace(tzinfo=None),
                            utc(2026, 6, 1).replace(tzinfo=None), scope["keys"]) is not None
    replace_interval(mysql_engine, schema.technical_indicators, frame, **scope)
    stored = dump(mysql_engine, schema.technical_indicators)
    for i, name in enumerate(["close", *schema.TECHNICAL_COLUMNS], start=2):
        want = frame[name].to_numpy()
        got = np.array([np.nan if r[i] is None else r[i] for r in stored], dtype="float64")
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        known = ~np.isnan(want)
        assert np.array_equal(got[known].view("int64"), want[known].view("int64")), name  # same bits


def test_rerun_with_new_values_replaces_them_and_drops_rows_the_new_rows_lack(parts_backend):
    """The same keys with new values (MySQL: REPLACE in place), then fewer rows (stale keys: the
    DELETE + INSERT fallback): the scope always ends with exactly the new rows."""
    from cryptoetl.warehouse.writes import replace_interval_parts

    engine, prefetch = parts_backend
    frame = _price_frame()
    replace_interval(engine, schema.price_data_real, frame, keys={"symbol": SYMBOLS}, **SCOPE)
    doubled = frame.assign(price=frame["price"] * 2)
    parts = [({"symbol": ["BTC", "ETH"]}, _by_symbol(doubled, "BTC", "ETH")), ({"symbol": ["SOL"]},
                                                                               _by_symbol(doubled, "SOL"))]
    replace_interval_parts(engine, schema.price_data_real, iter(parts), prefetch=prefetch, **SCOPE)
    assert [r[2] for r in dump(engine, schema.price_data_real)] == \
        list(doubled.sort_values(["symbol", "time"])["price"])
    fewer = doubled[doubled["time"].dt.hour != 3]
    parts = [({"symbol": ["BTC", "ETH"]}, _by_symbol(fewer, "BTC", "ETH")), ({"symbol": ["SOL"]},
                                                                             _by_symbol(fewer, "SOL"))]
    assert replace_interval_parts(engine, schema.price_data_real, iter(parts), prefetch=prefetch, **SCOPE) == len(fewer)
    assert [(r[0], r[2]) for r in dump(engine, schema.price_data_real)] == \
        list(fewer.sort_values(["symbol", "time"])[["symbol", "price"]].itertuples(index=False, name=None))
