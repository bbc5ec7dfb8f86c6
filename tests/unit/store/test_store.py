"""The store on SQLite and PostgreSQL: the prediction log, feedback, and the actions outbox."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, update

from inferd.store import (
    DELIVERED,
    FAILED,
    PENDING,
    FeedbackEntry,
    LoggedPrediction,
    Store,
    default_store_url,
    open_store,
    schema,
)
from tests.support.postgres import fresh_database
from tests.unit.store.records import action, prediction, table_rows


def test_saved_predictions_are_found_by_request_id(store: Store) -> None:
    store.save([prediction("r1", 0), prediction("r1", 1), prediction("r2", 0, model="n")], [])
    found = store.find_predictions(["r1", "r2", "unknown"])
    assert found == {
        "r1": [LoggedPrediction("r1", 0, "m", "1"), LoggedPrediction("r1", 1, "m", "1")],
        "r2": [LoggedPrediction("r2", 0, "n", "1")],
    }
    assert store.find_predictions([]) == {}


def test_predictions_keep_their_fields(store: Store, store_url: str) -> None:
    store.save(
        [
            prediction(
                "r1",
                created_at=1700000000.25,
                latency_ms=3.5,
                inputs=None,
                prediction={"scores": np.array([0.25, 0.75]), "top": np.int64(1), "bad": np.nan},
                decisions=["a", "b"],
            )
        ],
        [],
    )
    (row,) = table_rows(store_url, schema.predictions)
    assert row["created_at"] == 1700000000.25
    assert row["latency_ms"] == 3.5
    assert row["inputs"] is None  # SQL NULL: no inputs logged
    assert row["prediction"] == {"scores": [0.25, 0.75], "top": 1, "bad": None}
    assert row["decisions"] == ["a", "b"]
    assert row["feedback"] is None and row["feedback_at"] is None


def test_feedback_is_attached_and_unknown_pairs_are_reported(store: Store, store_url: str) -> None:
    store.save([prediction("r1", 0), prediction("r1", 1), prediction("r2", 0)], [])
    unmatched = store.attach_feedback(
        [
            FeedbackEntry("r1", 1, {"label": "dog"}),
            FeedbackEntry("r2", 0, 3.5),
            FeedbackEntry("r2", 7, "x"),  # no item 7
            FeedbackEntry("nope", 0, "y"),  # no such request
        ],
        at=1234.5,
    )
    assert unmatched == [("r2", 7), ("nope", 0)]
    rows = {(r["request_id"], r["item"]): r for r in table_rows(store_url, schema.predictions)}
    assert rows[("r1", 1)]["feedback"] == {"label": "dog"}
    assert rows[("r1", 1)]["feedback_at"] == 1234.5
    assert rows[("r2", 0)]["feedback"] == 3.5
    assert rows[("r1", 0)]["feedback"] is None and rows[("r1", 0)]["feedback_at"] is None


def test_feedback_goes_to_every_row_of_a_repeated_request_id(store: Store, store_url: str) -> None:
    store.save([prediction("r1", 0)], [])
    store.save([prediction("r1", 0, version="2")], [])  # the client re-sent the request
    assert store.attach_feedback([FeedbackEntry("r1", 0, "cat")], at=1.0) == []
    assert [r["feedback"] for r in table_rows(store_url, schema.predictions)] == ["cat", "cat"]
    assert len(store.find_predictions(["r1"])["r1"]) == 2


def test_an_action_with_a_known_idempotency_key_is_skipped(store: Store) -> None:
    store.save([prediction("r1")], [action("k1", event={"first": True})])
    store.save([prediction("r1")], [action("k1", event={"first": False}), action("k2")])
    store.save([], [action("k3"), action("k3", event={"twice": "in one save"})])
    actions = store.list_actions()
    assert [a.idempotency_key for a in actions] == ["k3", "k2", "k1"]
    assert actions[2].event == {"first": True}
    assert actions[0].event == {"key": "k3", "score": 0.9}


def test_a_stored_action_keeps_what_was_enqueued(store: Store) -> None:
    event = {"z": 1, "a": {"nested": [1, 2, 3]}, "m": "ü"}  # key order matters to a receiver
    record = action(
        "k1",
        model="digits",
        version="3",
        request_id="req",
        item=2,
        decision="refer",
        action="refer.webhook",
        target={"url": "http://x/y", "headers": {"X-T": "1"}, "max_attempts": 4},
        event=event,
        created_at=1000.0,
    )
    store.save([], [record])
    stored = store.next_pending("digits")
    assert stored is not None
    assert (stored.model, stored.version, stored.request_id, stored.item) == (
        "digits",
        "3",
        "req",
        2,
    )
    assert (stored.decision, stored.action, stored.kind) == ("refer", "refer.webhook", "webhook")
    assert stored.target == record.target
    assert stored.event == event and list(stored.event) == ["z", "a", "m"]
    assert stored.state == PENDING and stored.attempts == 0 and stored.last_error is None
    assert stored.created_at == 1000.0 and stored.next_attempt_at == 1000.0
    assert stored.delivered_at is None


def test_next_pending_is_the_lowest_id_pending_action_of_the_model(store: Store) -> None:
    store.save([], [action("a1"), action("b1", model="n"), action("a2")])
    store.save([], [action("a3")])
    assert store.pending_models() == ["m", "n"]
    first = store.next_pending("m")
    assert first is not None and first.idempotency_key == "a1"
    store.mark_retry(first.id, attempts=1, next_attempt_at=time.time() + 3600, error="HTTP 500")
    again = store.next_pending("m")  # not due for an hour, and still first in line
    assert again is not None and again.idempotency_key == "a1" and again.attempts == 1
    store.mark_delivered(first.id, at=time.time())
    second = store.next_pending("m")
    assert second is not None and second.idempotency_key == "a2" and second.id > first.id
    store.mark_failed(second.id, attempts=1, error="HTTP 400")
    third = store.next_pending("m")
    assert third is not None and third.idempotency_key == "a3"
    assert store.next_pending("unknown") is None
    store.mark_delivered(third.id, at=time.time())
    assert store.pending_models() == ["n"]
    assert store.next_pending("m") is None


def test_marks_lists_counts_and_retry_failed(store: Store) -> None:
    store.save([], [action(f"k{i}") for i in range(4)] + [action("n1", model="n")])
    ids = {a.idempotency_key: a.id for a in store.list_actions()}

    store.mark_delivered(ids["k0"], at=50.0)
    store.mark_retry(ids["k1"], attempts=2, next_attempt_at=99.0, error="HTTP 503")
    store.mark_failed(ids["k2"], attempts=3, error="gave up")
    store.mark_failed(ids["n1"], attempts=1, error="HTTP 404")
    store.mark_retry(ids["k0"], attempts=5, next_attempt_at=1.0, error="late")  # not pending

    by_key = {a.idempotency_key: a for a in store.list_actions()}
    assert (by_key["k0"].state, by_key["k0"].attempts, by_key["k0"].delivered_at) == (
        DELIVERED,
        1,
        50.0,
    )
    assert by_key["k0"].last_error is None
    k1 = by_key["k1"]
    assert (k1.state, k1.attempts, k1.next_attempt_at, k1.last_error) == (
        PENDING,
        2,
        99.0,
        "HTTP 503",
    )
    assert (by_key["k2"].state, by_key["k2"].attempts, by_key["k2"].last_error) == (
        FAILED,
        3,
        "gave up",
    )

    assert [a.idempotency_key for a in store.list_actions()] == ["n1", "k3", "k2", "k1", "k0"]
    assert [a.idempotency_key for a in store.list_actions(limit=2)] == ["n1", "k3"]
    assert [a.idempotency_key for a in store.list_actions(state=FAILED)] == ["n1", "k2"]
    assert [a.idempotency_key for a in store.list_actions(state=FAILED, model="m")] == ["k2"]
    assert [a.idempotency_key for a in store.list_actions(model="n")] == ["n1"]
    assert store.action_counts() == {
        ("m", DELIVERED): 1,
        ("m", PENDING): 2,
        ("m", FAILED): 1,
        ("n", FAILED): 1,
    }

    before = time.time()
    assert store.retry_failed(model="m") == 1
    (k2,) = [a for a in store.list_actions() if a.idempotency_key == "k2"]
    assert k2.state == PENDING
    assert (k2.idempotency_key, k2.attempts) == ("k2", 0)
    assert before <= k2.next_attempt_at <= time.time()
    assert store.retry_failed(ids=[ids["k0"], ids["n1"]]) == 1  # k0 is delivered: left alone
    assert store.retry_failed(ids=[]) == 0
    assert store.retry_failed() == 0
    assert store.action_counts() == {("m", DELIVERED): 1, ("m", PENDING): 3, ("n", PENDING): 1}


def test_prune_keeps_pending_and_failed_actions(store: Store) -> None:
    old, new = 1000.0, 5000.0
    store.save(
        [prediction("old", created_at=old), prediction("new", created_at=new)],
        [
            action("old-delivered", created_at=old),
            action("old-pending", created_at=old),
            action("old-failed", created_at=old),
            action("new-delivered", created_at=new),
        ],
    )
    ids = {a.idempotency_key: a.id for a in store.list_actions()}
    store.mark_delivered(ids["old-delivered"], at=old)
    store.mark_delivered(ids["new-delivered"], at=new)
    store.mark_failed(ids["old-failed"], attempts=10, error="gave up")

    assert store.prune(before=3000.0) == (1, 1)
    assert list(store.find_predictions(["old", "new"])) == ["new"]
    assert sorted(a.idempotency_key for a in store.list_actions()) == [
        "new-delivered",
        "old-failed",
        "old-pending",
    ]
    assert store.prune(before=3000.0) == (0, 0)


def test_concurrent_saves_from_several_threads(store: Store) -> None:
    threads, saves = 8, 25
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(saves):
                store.save(
                    [prediction(f"r{t}-{i}", model=f"m{t}")],
                    [action(f"k{t}-{i}", model=f"m{t}"), action("shared")],
                )
                store.next_pending(f"m{t}")  # reads interleaved with the writes
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert errors == []
    counts = store.action_counts()
    assert sum(counts.values()) == threads * saves + 1  # "shared" enqueued once
    assert len(
        store.find_predictions([f"r{t}-{i}" for t in range(threads) for i in range(saves)])
    ) == (threads * saves)
    for t in range(threads):  # each thread's actions in the order it saved them
        keys = [a.idempotency_key for a in reversed(store.list_actions(model=f"m{t}", limit=1000))]
        assert [k for k in keys if k != "shared"] == [f"k{t}-{i}" for i in range(saves)]


def test_a_reopened_store_has_everything(store_url: str) -> None:
    first = open_store(store_url)
    first.save([prediction("r1")], [action("k1")])
    first.close()
    second = open_store(store_url)
    try:
        assert list(second.find_predictions(["r1"])) == ["r1"]
        pending = second.next_pending("m")
        assert pending is not None and pending.idempotency_key == "k1"
        second.save([], [action("k2")])
        assert [a.idempotency_key for a in second.list_actions()] == ["k2", "k1"]
    finally:
        second.close()


def test_a_store_from_a_newer_inferd_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(update(schema.schema_version).values(version=schema.SCHEMA_VERSION + 1))
    engine.dispose()
    with pytest.raises(ValueError, match="newer inferd"):
        open_store(store_url)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://user@host/db", "scheme 'mysql' is not supported; use sqlite:///"),
        ("not a url", "is not a URL; use sqlite:///"),
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
    ],
)
def test_a_bad_url_says_which_urls_work(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="postgresql://") as caught:
        open_store(url)
    assert says in str(caught.value)


def test_an_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"could not open the store at postgresql://u:\*\*\*@"):
        open_store("postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2")


def test_the_default_store_is_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    folder = tmp_path / "not" / "yet"
    url = default_store_url(folder)
    assert url == f"sqlite:///{folder / 'inferd.db'}"
    assert folder.is_dir()
    store = open_store(url)
    try:
        store.save([prediction("r")], [])
        assert (folder / "inferd.db").is_file()
    finally:
        store.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = open_store(default_store_url(tmp_path))
    try:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_postgres_scheme_aliases(postgres_url: str) -> None:
    url = fresh_database(postgres_url)
    for alias in ("postgres://", "postgresql+psycopg://"):
        store = open_store(url.replace("postgresql://", alias, 1))
        try:
            store.save([], [action(alias)])
            assert store.pending_models() == ["m"]
        finally:
            store.close()


def test_postgres_statements_time_out(postgres_url: str) -> None:
    store = open_store(fresh_database(postgres_url))
    try:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "30s"
    finally:
        store.close()
