"""The monitor's side of the store: logged rows with their costs and feedback, and the
upgrade of a store written before those columns existed."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from inferd.store import FeedbackEntry, Store, open_store, schema
from tests.unit.store.records import prediction


def test_logged_rows_keep_their_costs_and_feedback(store: Store) -> None:
    store.save(
        [
            prediction(
                "r1",
                created_at=10.0,
                stage_ms={"queue": 0.1, "preprocess": 0.2, "model": 1.5, "postprocess": 0.05},
                cpu_ms=1.25,
                energy_j=0.02,
                energy_method="estimate",
                cost=3e-7,
            ),
            prediction("r2", created_at=20.0),
            prediction("r3", created_at=30.0, model="other"),
        ],
        [],
    )
    store.attach_feedback([FeedbackEntry("r1", 0, "dog")], at=40.0)
    rows = store.logged("m")
    assert [row.request_id for row in rows] == ["r1", "r2"]
    first, second = rows
    assert first.stage_ms == {"queue": 0.1, "preprocess": 0.2, "model": 1.5, "postprocess": 0.05}
    assert (first.cpu_ms, first.energy_j, first.energy_method, first.cost) == (
        1.25,
        0.02,
        "estimate",
        3e-7,
    )
    assert (first.feedback, first.feedback_at) == ("dog", 40.0)
    assert second.feedback is None and second.cpu_ms is None and second.stage_ms is None
    assert second.inputs == {"x": [1.0, 2.0]}


def test_logged_reads_a_time_window_and_keeps_the_newest(store: Store) -> None:
    store.save([prediction(f"r{t}", created_at=float(t)) for t in range(10)], [])
    assert [r.request_id for r in store.logged("m", since=3.0, until=6.0)] == ["r3", "r4", "r5"]
    assert [r.request_id for r in store.logged("m", limit=2)] == ["r8", "r9"]


_VERSION_1 = """
CREATE TABLE predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id VARCHAR(256) NOT NULL,
    item INTEGER NOT NULL, model VARCHAR(256) NOT NULL, version VARCHAR(64) NOT NULL,
    created_at FLOAT NOT NULL, latency_ms FLOAT NOT NULL, inputs JSON, prediction JSON NOT NULL,
    decisions JSON NOT NULL, feedback JSON, feedback_at FLOAT)
"""


def test_a_version_1_store_is_upgraded_in_place(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(_VERSION_1))
        conn.execute(
            text(
                "INSERT INTO predictions (request_id, item, model, version, created_at, "
                "latency_ms, inputs, prediction, decisions) VALUES "
                "('old', 0, 'm', '1', 5.0, 2.0, NULL, '{\"label\": \"cat\"}', '[]')"
            )
        )
        conn.execute(
            text(
                "CREATE TABLE inferd_schema_version "
                "(id INTEGER PRIMARY KEY, version INTEGER NOT NULL)"
            )
        )
        conn.execute(text("INSERT INTO inferd_schema_version VALUES (1, 1)"))
    engine.dispose()

    store = open_store(url)
    try:
        store.save([prediction("new", cpu_ms=0.5, energy_method="rapl", energy_j=0.01)], [])
        old, new = store.logged("m")
        assert old.request_id == "old" and old.cpu_ms is None and old.prediction == {"label": "cat"}
        assert (new.cpu_ms, new.energy_method) == (0.5, "rapl")
    finally:
        store.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version FROM inferd_schema_version")).scalar_one()
    engine.dispose()
    assert version == schema.SCHEMA_VERSION == 2


def test_a_numeric_truth_reads_back_as_a_number(store: Store) -> None:
    store.save([prediction("n1", prediction={"value": 3.0})], [])
    store.attach_feedback([FeedbackEntry("n1", 0, 3.5)], at=1.0)
    assert store.logged("m")[0].feedback == 3.5
