"""FakeBackend, the one test double for a model: answers, latency, failures, its record."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from inferd.backends import load_backend
from inferd.errors import ModelError
from inferd.pipeline import ItemResult, Pipeline
from inferd.spec import ModelSpec, TensorSpec, parse_spec
from inferd.testing import FakeBackend, FakeModelError, read_record


def _x(*rows: list[float]) -> dict[str, np.ndarray]:
    return {"x": np.array(rows, dtype=np.float32)}


# --- answers ---------------------------------------------------------------------------------


def test_by_default_one_fp32_tensor_in_and_out_with_a_batch_dimension() -> None:
    fake = FakeBackend()
    assert [(t.name, t.datatype, t.shape) for t in fake.inputs] == [("x", "FP32", [-1, -1])]
    assert [(t.name, t.datatype, t.shape) for t in fake.outputs] == [("y", "FP32", [-1, -1])]
    out = fake.run(_x([1.0, 2.0], [3.0, 4.0], [5.0, 6.0]))
    assert list(out) == ["y"]
    assert out["y"].dtype == np.float32
    assert out["y"].tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]


def test_default_answers_echo_inputs_in_order_cast_to_each_declared_datatype() -> None:
    fake = FakeBackend(
        outputs=[
            TensorSpec(name="p", datatype="FP64", shape=[-1, 2]),
            TensorSpec(name="q", datatype="INT64", shape=[-1]),
            TensorSpec(name="r", datatype="INT64", shape=[-1]),
        ]
    )
    out = fake.run({"a": np.ones((2, 2), np.float32), "b": np.array([7.9, 8.2], np.float32)})
    assert out["p"].dtype == np.float64 and out["p"].shape == (2, 2)
    assert out["q"].dtype == np.int64 and out["q"].tolist() == [7, 8]
    assert out["r"].tolist() == [7, 8]  # more outputs than inputs: the last input again


def test_fixed_outputs_are_one_items_answer_repeated_for_the_batch() -> None:
    fake = FakeBackend(compute={"y": [0.5, 1.5], "label": 3})
    out = fake.run(_x([1.0], [2.0], [3.0]))
    assert out["y"].tolist() == [[0.5, 1.5]] * 3
    assert out["label"].tolist() == [3, 3, 3]


def test_a_compute_function_answers_and_lists_become_arrays() -> None:
    fake = FakeBackend(compute=lambda inputs: {"y": inputs["x"] * 2, "n": [len(inputs["x"])]})
    out = fake.run(_x([1.0], [2.0]))
    assert out["y"].tolist() == [[2.0], [4.0]]
    assert isinstance(out["n"], np.ndarray) and out["n"].tolist() == [2]


# --- latency ---------------------------------------------------------------------------------


def test_latency_is_slept_on_every_call() -> None:
    fake = FakeBackend(latency_s=0.1)
    started = time.perf_counter()
    fake.run(_x([1.0]))
    fake.run(_x([1.0], [2.0]))
    assert time.perf_counter() - started >= 0.2


def test_item_latency_grows_with_the_batch_so_batching_shows() -> None:
    fake = FakeBackend(item_latency_s=0.05)
    started = time.perf_counter()
    fake.run(_x([1.0]))
    one = time.perf_counter() - started
    started = time.perf_counter()
    fake.run(_x(*([[1.0]] * 6)))
    assert one >= 0.05
    assert time.perf_counter() - started >= 0.3


def test_latency_may_be_a_function_of_the_inputs() -> None:
    fake = FakeBackend(latency_s=lambda inputs: float(inputs["x"].max()))
    started = time.perf_counter()
    fake.run(_x([0.0], [0.15]))
    assert time.perf_counter() - started >= 0.15


# --- failures --------------------------------------------------------------------------------


def test_an_exception_fails_every_call() -> None:
    fake = FakeBackend(fail=RuntimeError("kaboom"))
    for _ in range(2):
        with pytest.raises(RuntimeError, match=r"^kaboom$"):
            fake.run(_x([1.0]))
    assert fake.calls == 2  # failed calls are recorded too


def test_a_predicate_fails_only_the_batches_it_picks() -> None:
    fake = FakeBackend(fail=lambda inputs: bool((inputs["x"] < 0).any()))
    assert fake.run(_x([1.0], [2.0]))["y"].tolist() == [[1.0], [2.0]]
    with pytest.raises(FakeModelError, match="on purpose"):
        fake.run(_x([1.0], [-2.0]))  # one negative item fails its whole batch
    assert fake.run(_x([3.0]))["y"].tolist() == [[3.0]]
    assert fake.batch_sizes == [2, 2, 1]


def test_a_predicate_may_name_the_exception() -> None:
    def negative(inputs: dict[str, np.ndarray]) -> BaseException | None:
        return ValueError("negative input") if (inputs["x"] < 0).any() else None

    fake = FakeBackend(fail=negative)
    with pytest.raises(ValueError, match="negative input"):
        fake.run(_x([-1.0]))
    assert fake.run(_x([1.0]))["y"].tolist() == [[1.0]]


def test_a_failing_batch_is_a_model_error_for_its_items_in_a_pipeline() -> None:
    fake = FakeBackend(fail=RuntimeError("the weights are gone"))
    pipeline = Pipeline(ModelSpec(name="fails"), fake)
    results = pipeline.run_batch([pipeline.item_from_instance([1.0, 2.0]) for _ in range(2)])
    assert all(isinstance(r, ModelError) for r in results)
    assert "model 'fails' failed while running: the weights are gone" in str(results[0])


# --- the record ------------------------------------------------------------------------------


def test_the_record_holds_copies_of_each_batch_in_order() -> None:
    fake = FakeBackend()
    first = _x([1.0, 2.0])
    fake.run(first)
    fake.run(_x([3.0, 4.0], [5.0, 6.0]))
    first["x"][0, 0] = 99.0  # the caller reusing its buffer does not rewrite history
    assert fake.calls == 2
    assert fake.batch_sizes == [1, 2]
    assert [b["x"].tolist() for b in fake.batches] == [[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]]


def test_the_record_is_complete_when_threads_run_at_once() -> None:
    fake = FakeBackend(latency_s=0.001)
    threads = [
        threading.Thread(target=lambda: [fake.run(_x([1.0])) for _ in range(25)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.calls == 200
    assert fake.batch_sizes == [1] * 200


def test_a_pipeline_batch_is_one_call_of_its_size() -> None:
    fake = FakeBackend(inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 2])])
    pipeline = Pipeline(ModelSpec(name="m"), fake)
    results = pipeline.run_batch([pipeline.item_from_instance([float(i), 0.0]) for i in range(3)])
    assert [r.batch_size for r in results if isinstance(r, ItemResult)] == [3, 3, 3]
    assert fake.batch_sizes == [3]


def test_record_to_appends_each_batch_for_another_process(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    assert read_record(path) == []
    fake = FakeBackend(fail=lambda inputs: bool((inputs["x"] < 0).any()), record_to=path)
    fake.run(_x([0.25]))
    with pytest.raises(FakeModelError):
        fake.run(_x([-1.0], [2.0]))
    record = read_record(path)
    assert [b["x"].tolist() for b in record] == [[[0.25]], [[-1.0], [2.0]]]
    with path.open("a") as file:
        file.write('{"x": [[3.')  # a batch the other process is writing right now
    assert len(read_record(path)) == 2


# --- life ------------------------------------------------------------------------------------


def test_close_is_counted_and_a_closed_backend_refuses_to_run() -> None:
    fake = FakeBackend()
    assert not fake.closed
    fake.close()
    assert fake.closed and fake.closes == 1
    with pytest.raises(RuntimeError, match="after close"):
        fake.run(_x([1.0]))


def test_it_is_a_python_backend_model(tmp_path: Path) -> None:
    """The python backend instantiates `Model` and calls it: a factory of FakeBackend does."""
    (tmp_path / "model.py").write_text(
        textwrap.dedent(
            """
            from inferd.testing import FakeBackend

            FAKES = []

            def Model():
                FAKES.append(FakeBackend(compute=lambda inputs: {"y": inputs["x"] + 1}))
                return FAKES[-1]
            """
        ),
        encoding="utf-8",
    )
    spec = parse_spec(
        {
            "name": "fake",
            "backend": "python",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}],
        }
    )
    backend = load_backend(spec, tmp_path, trust_code=True)
    assert backend.run(_x([1.0], [2.0]))["y"].tolist() == [[2.0], [3.0]]
    [fake] = sys.modules["inferd_user_model_fake_" + tmp_path.name].FAKES
    assert fake.batch_sizes == [2]
    backend.close()
    assert fake.closes == 1


def test_importing_it_pulls_in_no_test_framework() -> None:
    code = "import sys, inferd.testing; print('pytest' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
