"""The Ray Serve engine's pure parts (deploy/ray.py): model.yaml's `scale:` as Serve options,
Ray's errors as inferd's, the missing extra, the temp dir, the remote runner over a fake
handle, and what crosses to a replica pickling cleanly. On a real cluster:
tests/e2e/test_ray_engine.py."""

from __future__ import annotations

import asyncio
import base64
import pickle
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from inferd.cli import app
from inferd.deploy import ray as engine
from inferd.errors import (
    BadRequestError,
    ModelError,
    ModelNotReadyError,
    OverloadedError,
    StartupError,
)
from inferd.pipeline import ItemResult
from inferd.repository import load_model
from inferd.spec import ModelSpec, parse_spec
from inferd.stages import Item, Prediction

ROOT = Path(__file__).resolve().parents[3]
SEVEN = ROOT / "examples" / "digits" / "samples" / "seven.png"


def _spec(**sections: Any) -> ModelSpec:
    return parse_spec({"name": "m", **sections})


# --- scale: → Ray Serve's options --------------------------------------------------------


def test_a_fixed_scale_is_num_replicas() -> None:
    options = engine.deployment_options(_spec(scale={"min_replicas": 2}))
    assert options["num_replicas"] == 2
    assert "autoscaling_config" not in options
    assert options["ray_actor_options"] == {"num_cpus": 1}


def test_a_range_is_an_autoscaling_config() -> None:
    spec = _spec(
        scale={"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 5},
        batching={"max_batch_size": 8},
    )
    options = engine.deployment_options(spec)
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {
        "min_replicas": 1,
        "initial_replicas": 1,
        "max_replicas": 3,
        "target_ongoing_requests": 5,
    }
    assert options["max_ongoing_requests"] >= 8  # a batch can fill on one replica


def test_a_call_carries_a_share_of_a_batch_so_calls_spread_over_replicas() -> None:
    assert engine.front_batch_size(_spec(batching={"max_batch_size": 32})) == 16
    two = _spec(batching={"max_batch_size": 32}, scale={"min_replicas": 2})
    assert engine.front_batch_size(two) == 8
    autoscaled = _spec(
        batching={"max_batch_size": 30}, scale={"min_replicas": 1, "max_replicas": 4}
    )
    assert engine.front_batch_size(autoscaled) == 4  # 30 / 8, rounded up
    assert engine.front_batch_size(_spec(batching={"max_batch_size": 1})) == 1


def test_the_target_defaults_to_a_batch() -> None:
    assert engine.target_ongoing(_spec(batching={"max_batch_size": 16})) == 16
    assert engine.target_ongoing(_spec(batching={"max_batch_size": 0})) == 2


def test_a_replica_claims_its_runtime_threads_or_one_cpu() -> None:
    assert engine.replica_cpus(_spec()) == 1
    assert engine.replica_cpus(_spec(runtime={"threads": 3})) == 3


# --- Ray's errors → inferd's --------------------------------------------------------------


class RayActorError(Exception):  # named as Ray names them: translate reads the class names
    pass


class ActorDiedError(RayActorError):
    pass


class BackPressureError(Exception):
    pass


def test_a_lost_replica_is_503_with_retry_after() -> None:
    error = engine.translate(ActorDiedError("died"), "digits:1")
    assert isinstance(error, ModelNotReadyError)
    assert error.status_code == 503 and error.retry_after_s == 1.0
    assert error.message.startswith("digits:1: the replica running this request was lost")


def test_back_pressure_is_429_and_anything_else_a_model_error() -> None:
    assert isinstance(engine.translate(BackPressureError(), "m:1"), OverloadedError)
    other = engine.translate(ValueError("bad\nmore"), "m:1")
    assert isinstance(other, ModelError)
    assert other.message == "m:1: the replica failed: ValueError: bad"


def test_rays_own_error_classes_are_mapped() -> None:
    exceptions = pytest.importorskip("ray.exceptions")
    serve_exceptions = pytest.importorskip("ray.serve.exceptions")
    for cls in (
        exceptions.ActorDiedError,
        exceptions.ActorUnavailableError,
        serve_exceptions.DeploymentUnavailableError,
    ):
        assert isinstance(engine.translate(cls.__new__(cls), "m:1"), ModelNotReadyError), cls
    back_pressure = serve_exceptions.BackPressureError
    assert isinstance(
        engine.translate(back_pressure.__new__(back_pressure), "m:1"), OverloadedError
    )


# --- bad input and faults at start --------------------------------------------------------


def _hide_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == "ray" or n.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_ray(monkeypatch)
    with pytest.raises(StartupError, match=r"pip install 'inferd\[ray\]'"):
        engine.import_ray()


def test_serve_without_ray_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide_ray(monkeypatch)
    done = CliRunner().invoke(
        app, ["serve", str(tmp_path), "--engine", "ray", "--data-dir", str(tmp_path / "d")]
    )
    assert done.exit_code == 1
    assert "pip install 'inferd[ray]'" in " ".join(done.output.split()), done.output


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--engine", "spark"], "--engine is local or ray; got 'spark'"),
        (
            ["--address", "127.0.0.1:6379"],
            "--address names a Ray cluster: use it with --engine ray",
        ),
    ],
)
def test_serve_refuses_a_bad_engine(tmp_path: Path, options: list[str], says: str) -> None:
    done = CliRunner().invoke(app, ["serve", str(tmp_path), "--data-dir", str(tmp_path), *options])
    assert done.exit_code == 1
    assert says in " ".join(done.output.split()), done.output


def test_an_unreachable_cluster_fails_fast(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StartupError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        engine.RayDeployments.connect(f"127.0.0.1:{port}", tmp_path)
    assert time.monotonic() - started < 10


def test_the_temp_dir_is_under_the_data_dir_when_short_enough(tmp_path: Path) -> None:
    short = Path("/tmp/d")
    assert engine.ray_temp_dir(short) == short / "ray"
    long = tmp_path / ("x" * 80)
    fallback = engine.ray_temp_dir(long)
    assert not fallback.is_relative_to(long)
    assert len(str(fallback)) + engine._SESSION_SOCKET <= engine._SOCKET_PATH_MAX
    assert engine.ray_temp_dir(long) == fallback  # the same data dir, the same folder


# --- what crosses to a replica and back -----------------------------------------------------


def test_items_and_results_pickle() -> None:
    entry = load_model(ROOT / "model_repository" / "digits")
    pipeline = entry.versions[max(entry.versions)].predictive
    item = pipeline.item_from_instance({"b64": base64.b64encode(SEVEN.read_bytes()).decode()})
    sent = pickle.loads(pickle.dumps(item))
    assert sent.inputs.keys() == item.inputs.keys()
    [result] = pipeline.run_batch([sent])
    assert isinstance(result, ItemResult)
    result.served_by = "replica-1"
    back = pickle.loads(pickle.dumps(result))
    assert back.prediction.fields["label"] == "7" and back.served_by == "replica-1"
    error = pickle.loads(pickle.dumps(OverloadedError("full", retry_after_s=3)))
    assert error.retry_after_s == 3 and error.message == "full"


# --- the remote runner over a fake handle ------------------------------------------------


class _Response:
    """A DeploymentResponse: its outcome after `delay_s` (an exception is raised)."""

    def __init__(self, outcome: Any, delay_s: float = 0.0) -> None:
        self.outcome, self.delay_s, self.cancelled = outcome, delay_s, False

    def result(self, timeout_s: float | None = None) -> Any:
        if timeout_s is not None and self.delay_s > timeout_s:
            time.sleep(timeout_s)
            raise TimeoutError("no answer")
        time.sleep(self.delay_s)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def cancel(self) -> None:
        self.cancelled = True


class _Serve:
    """Just enough of `ray.serve` (and a deployment handle) for a RemoteRunner."""

    def __init__(self, *responses: _Response) -> None:
        self.responses = list(responses)
        self.sent: list[list[Item]] = []
        self.given: dict[str, Any] = {}
        self.deleted: list[str] = []

    def deployment(self, cls: type) -> _Serve:
        assert cls is engine.Replica
        return self

    def options(self, **given: Any) -> _Serve:
        self.given = given
        return self

    def bind(self, args: engine.ReplicaArgs) -> str:
        self.args = args
        return "app"

    def run(self, target: str, name: str, route_prefix: None) -> _Serve:
        self.app = name
        return self

    def remote(self, items: list[Item]) -> _Response:
        self.sent.append(items)
        return self.responses.pop(0)

    def delete(self, name: str) -> None:
        self.deleted.append(name)


def _runner(serve: _Serve, **sections: Any) -> engine.RemoteRunner:
    args = engine.ReplicaArgs("/models/m", 1, False, (), 1)
    return engine.RemoteRunner(serve, "inferd-m-v1", _spec(**sections), args)


def _answer(name: str) -> ItemResult:
    return ItemResult(Prediction({"y": 1}), 0, 0, 0, 1, served_by=name)


def _item(x: float = 1.0) -> Item:
    return Item.of({"x": x})


async def test_items_go_to_the_deployment_in_batches_and_answers_come_back() -> None:
    serve = _Serve(
        _Response([_answer("r1")]),
        _Response([_answer("r2"), BadRequestError("no good")], delay_s=0.05),
    )
    runner = _runner(serve, scale={"min_replicas": 2})
    await runner.start()
    assert serve.app == "inferd-m-v1" and serve.given["name"] == "m"
    assert serve.given["num_replicas"] == 2
    result, _ = await runner.submit(_item(), time.monotonic() + 5)
    assert result.served_by == "r1"
    good, bad = await asyncio.gather(
        runner.submit(_item(2)), runner.submit(_item(3)), return_exceptions=True
    )
    assert len(serve.sent[1]) == 2  # one Ray call for both
    assert isinstance(good, tuple) and good[0].served_by == "r2"
    assert isinstance(bad, BadRequestError)  # the replica's own error, for that item alone
    await runner.stop()
    assert serve.deleted == ["inferd-m-v1"]
    with pytest.raises(ModelNotReadyError):
        runner.admit()


async def test_a_replica_lost_mid_request_is_503() -> None:
    runner = _runner(_Serve(_Response(ActorDiedError("gone"), delay_s=0.01)))
    await runner.start()
    with pytest.raises(ModelNotReadyError, match="lost") as caught:
        await runner.submit(_item())
    assert caught.value.retry_after_s == 1.0
    await runner.stop()


async def test_no_answer_never_hangs() -> None:
    late = _Response([_answer("r1")], delay_s=30)
    runner = _runner(_Serve(late), runtime={"batch_timeout_s": 0.1})
    await runner.start()
    started = time.monotonic()
    with pytest.raises(ModelNotReadyError, match="did not answer") as caught:
        await runner.submit(_item())  # by twice the batch timeout
    assert caught.value.retry_after_s == 1.0
    assert time.monotonic() - started < 3
    assert late.cancelled
    await runner.stop()


async def test_a_full_front_queue_is_429() -> None:
    serve = _Serve(*[_Response([_answer("r1")], delay_s=0.3) for _ in range(5)])
    runner = _runner(serve, batching={"max_queue": 1, "max_batch_size": 1})
    await runner.start()
    running = []
    for _ in range(5):  # four calls out (4 per replica), then one queued
        running.append(asyncio.ensure_future(runner.submit(_item())))
        await asyncio.sleep(0.03)
    with pytest.raises(OverloadedError):
        runner.admit()
    await asyncio.gather(*running)
    await runner.stop()
