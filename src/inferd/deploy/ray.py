"""Ray Serve: each model version a deployment of replicas (`inferd serve --engine ray`).

The front stays this process: inferd's HTTP server, the API, the DataPlane, decoding
(stage 1), decide/act and recording (stage 6), metrics and the store. Only a version's
`submit` changes: its items go to the version's Ray Serve deployment (`RemoteRunner`), whose
replicas each load the same model version and run their own Batcher over `Pipeline.run_batch`
(stages 2-5), so requests reaching one replica are batched together; the front batches too,
so one Ray call carries a batch of items. Each answer names the
replica that ran it (`ItemResult.served_by`, the `X-Inferd-Replica` header).

A replica lost mid-request (crashed, killed, its node gone) fails the requests it held with
503 and a Retry-After; no answer is awaited past twice the model's batch timeout.

This is the only module of inferd that imports ray, and only when called: ray is an optional
extra (`pip install 'inferd[ray]'`). Started locally, the cluster is made safe by default:
no dashboard (so no job API), usage stats off, no Serve HTTP proxy (inferd's server is the
only door), everything bound to 127.0.0.1, its temp dir under inferd's --data-dir.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inferd.errors import (
    InferdError,
    ModelError,
    ModelNotReadyError,
    OverloadedError,
    StartupError,
)
from inferd.spec import ModelSpec

if TYPE_CHECKING:
    from inferd.pipeline import ItemResult
    from inferd.repository import ModelVersion, Runner
    from inferd.stages import Item

logger = logging.getLogger("inferd.deploy.ray")

INSTALL_HINT = "pip install 'inferd[ray]'"
REPLICA_ACTOR_PREFIX = "SERVE_REPLICA::"
"""Ray Serve names each replica's actor this prefix and the replica's full id (what the
X-Inferd-Replica header says)."""

_SOCKET_PATH_MAX = 107
"""The longest path a unix socket may have (108 bytes with its NUL)."""
_SESSION_SOCKET = len("/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store")
"""What Ray appends to its temp dir for its longest socket path."""
_START_TIMEOUT_S = 300.0
"""How long a deployment may take to have its replicas running before start-up fails."""
_CONNECT_TIMEOUT_S = 5.0
_UNAVAILABLE = frozenset(
    {
        "RayActorError",  # ActorDiedError, ActorUnavailableError
        "DeploymentUnavailableError",
        "WorkerCrashedError",
        "NodeDiedError",
        "OwnerDiedError",
        "ObjectLostError",
        "GetTimeoutError",
    }
)
"""Ray's errors for a replica (or its node) lost mid-request: worth retrying elsewhere."""
_OVERLOADED = frozenset({"BackPressureError"})


def import_ray() -> tuple[Any, Any]:
    """`ray` and `ray.serve`, with usage stats off; a one-line error naming the extra when
    it is not installed."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # read when ray is imported
    try:
        import ray
        from ray import serve
    except ImportError as error:
        raise StartupError(
            f"--engine ray needs Ray Serve, which is not installed ({error.name or error}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    return ray, serve


# --- the pure parts: what model.yaml asks of Ray, and Ray's errors as inferd's ------------


def replica_cpus(spec: ModelSpec) -> int:
    """CPUs a replica claims from Ray, and its runtime's threads: model.yaml's
    `runtime.threads`, else 1 (so N replicas on N cores do not oversubscribe them)."""
    return max(1, spec.runtime.threads)


def target_ongoing(spec: ModelSpec) -> float:
    """Requests in flight per replica the autoscaler aims at: `scale.target_ongoing_requests`,
    else the model's max_batch_size (at least 2), so a replica's batches can fill."""
    given = spec.scale.target_ongoing_requests
    return given if given is not None else float(max(2, spec.max_batch_size))


def front_batch_size(spec: ModelSpec) -> int:
    """Items the front puts in one Ray call: half a replica's batch, shared among the most
    replicas, so the calls in flight spread across them and each replica merges two or more
    into a batch (on a 3.5 ms/item CNN, two replicas went from 1.20x to 1.38x one)."""
    return max(1, -(-spec.max_batch_size // (2 * spec.scale.most)))


def deployment_options(spec: ModelSpec) -> dict[str, Any]:
    """Ray Serve's options for a version's deployment, from model.yaml's `scale:` (a fixed
    `num_replicas`, or an `autoscaling_config` when max_replicas > min_replicas)."""
    scale = spec.scale
    target = target_ongoing(spec)
    options: dict[str, Any] = {
        # A replica takes a batch being run and one filling: beyond that, requests wait in
        # the front's router, which sends each to the least busy replica.
        "max_ongoing_requests": max(2, 2 * spec.max_batch_size, int(2 * target)),
        "ray_actor_options": {"num_cpus": replica_cpus(spec)},
        "health_check_period_s": 2.0,
        "logging_config": {"enable_access_log": False, "log_level": "WARNING"},
    }
    if scale.autoscaled:
        options["autoscaling_config"] = {
            "min_replicas": scale.min_replicas,
            "initial_replicas": scale.min_replicas,
            "max_replicas": scale.most,
            "target_ongoing_requests": target,
        }
    else:
        options["num_replicas"] = scale.min_replicas
    return options


def translate(error: BaseException, where: str) -> InferdError:
    """Ray's error for a request as inferd's: a lost replica is 503 with Retry-After, Ray's
    own back-pressure 429, anything else a model error (500)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    kind = type(error).__name__
    if names & _UNAVAILABLE:
        return ModelNotReadyError(
            f"{where}: the replica running this request was lost ({kind}); Ray Serve is "
            "replacing it, retry the request",
            retry_after_s=1.0,
        )
    if names & _OVERLOADED:
        return OverloadedError(
            f"{where}: every replica is busy ({kind}); retry later", retry_after_s=1.0
        )
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    return ModelError(f"{where}: the replica failed: {kind}: {first_line}")


def ray_temp_dir(data_dir: Path) -> Path:
    """Where a local cluster keeps its files: `DATA_DIR/ray`, unless that path is too long
    for Ray's unix sockets; then a short folder of the temp dir, named after the data dir."""
    wanted = data_dir.resolve() / "ray"
    if len(os.fsencode(wanted)) + _SESSION_SOCKET <= _SOCKET_PATH_MAX:
        return wanted
    digest = hashlib.sha256(os.fsencode(wanted)).hexdigest()[:10]
    short = Path(tempfile.gettempdir()) / f"inferd-ray-{digest}"
    if len(os.fsencode(short)) + _SESSION_SOCKET > _SOCKET_PATH_MAX:
        short = Path("/tmp") / f"inferd-ray-{digest}"
    logger.info(
        "Ray's files go to %s: under %s, its unix socket paths would pass 107 bytes", short, wanted
    )
    return short


def _reachable(address: str) -> None:
    """Fail fast when a cluster address names a host:port nothing answers on."""
    hostport = address.removeprefix("ray://")
    host, colon, port = hostport.rpartition(":")
    if not colon or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection(
            (host.strip("[]") or "127.0.0.1", int(port)), _CONNECT_TIMEOUT_S
        ).close()
    except OSError as error:
        raise StartupError(
            f"cannot reach the Ray cluster at {address} ({error.strerror or error}); check "
            "--address (the head's host:port, or ray://host:10001) and that the cluster is "
            "running (ray start --head)"
        ) from None


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


# --- the front's side -------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaArgs:
    """What a replica needs to load its version (the same folder, seen from its node)."""

    model_dir: str
    version: int
    trust_code: bool
    allow_env: tuple[str, ...]
    threads: int


class RayDeployments:
    """A connection to a Ray cluster that makes each model version a Serve deployment (the
    repository's `RunnerFactory`) and removes them again."""

    def __init__(
        self, ray: Any, serve: Any, trust_code: bool, allow_env: Sequence[str], local: bool
    ) -> None:
        self._ray = ray
        self._serve = serve
        self._trust_code = trust_code
        self._allow_env = tuple(allow_env)
        self._local = local
        self._deployed = 0

    @classmethod
    def connect(
        cls,
        address: str | None,
        data_dir: Path,
        trust_code: bool = False,
        allow_env: Sequence[str] = (),
    ) -> RayDeployments:
        """Join the cluster at `address`, or start a local one (safe defaults: see the module
        docstring); then start Serve without its HTTP proxy. Fails fast, with a message."""
        ray, serve = import_ray()
        settings: dict[str, Any] = {"logging_level": logging.WARNING, "namespace": "inferd"}
        if address:
            _reachable(address)
            settings["address"] = address
        else:
            temp = ray_temp_dir(data_dir)
            temp.mkdir(parents=True, exist_ok=True)
            settings.update(
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                _temp_dir=str(temp),
                _node_ip_address="127.0.0.1",
            )
        try:
            ray.init(**settings)
        except Exception as error:
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise StartupError(f"cannot start or join {where}: {error}") from None
        try:
            serve.start(proxy_location="Disabled")
        except Exception as error:
            ray.shutdown()
            raise StartupError(f"cannot start Ray Serve: {error}") from None
        logger.info(
            "Ray Serve engine: %s (%s CPUs); each model version a deployment",
            f"cluster {address}" if address else "a local cluster",
            ray.cluster_resources().get("CPU", "?"),
        )
        return cls(ray, serve, trust_code, allow_env, local=not address)

    def runner(self, model: ModelVersion, model_dir: Path) -> Runner:
        """A version's remote runner (deployed when it starts)."""
        self._deployed += 1
        app = _name(f"inferd-{model.name}-v{model.version}-{os.getpid()}-{self._deployed}")
        args = ReplicaArgs(
            str(model_dir.resolve()),
            model.version,
            self._trust_code,
            self._allow_env,
            replica_cpus(model.spec),
        )
        return RemoteRunner(self._serve, app, model.spec, args)

    def close(self) -> None:
        """Leave the cluster; a local one is shut down with it."""
        if self._local:
            try:
                self._serve.shutdown()
            except Exception:  # already going: nothing is left to stop
                logger.debug("serve.shutdown failed", exc_info=True)
        self._ray.shutdown()


class RemoteRunner:
    """A version's Ray Serve deployment, with a Batcher's face (`repository.Runner`).

    Items are batched in the front too (a Batcher whose batches are Ray calls, made from its
    worker threads), so a Ray round trip is paid per batch, not per item: at load, one call
    carries several requests' items, and each replica batches again what reaches it. A call
    carries a share of a replica's batch (`front_batch_size`), with up to four calls in flight
    per replica: Ray routes calls, not items, so calls of a whole batch each would load one
    replica while another idles."""

    def __init__(self, serve: Any, app: str, spec: ModelSpec, args: ReplicaArgs) -> None:
        from inferd.batching import Batcher

        self._serve = serve
        self._app = app
        self._spec = spec
        self._args = args
        self._where = f"{spec.name}:{args.version}"
        self._handle: Any = None
        timeout = spec.runtime.batch_timeout_s
        self._wait_s = 2 * timeout if timeout is not None else 300.0
        """How long a Ray call is awaited: a replica's queue and its batch."""
        self._batcher: Batcher[Item, ItemResult] = Batcher(
            self._call,
            max_batch_size=front_batch_size(spec),
            max_delay_ms=spec.batching.max_delay_ms,
            max_queue=spec.batching.max_queue,
            workers=4 * spec.scale.most,
            name=self._where,
            inline_below_ms=0,  # a Ray call blocks its thread: never on the loop
        )
        self.hung = False

    @property
    def queue_depth(self) -> int:
        return self._batcher.queue_depth

    @property
    def running(self) -> int:
        """Ray calls in flight."""
        return self._batcher.running

    async def start(self) -> None:
        """Deploy the version and wait (in a thread) for its replicas to be running."""
        serve = self._serve
        scale = self._spec.scale
        app = (
            serve.deployment(Replica)
            .options(name=_name(self._spec.name), **deployment_options(self._spec))
            .bind(self._args)
        )
        logger.info(
            "deploying %s as Ray Serve app %s: %s",
            self._where,
            self._app,
            f"{scale.min_replicas}-{scale.most} replicas (autoscaled)"
            if scale.autoscaled
            else f"{scale.min_replicas} replica(s)",
        )
        try:
            self._handle = await asyncio.wait_for(
                asyncio.to_thread(serve.run, app, name=self._app, route_prefix=None),
                _START_TIMEOUT_S,
            )
        except TimeoutError:
            raise StartupError(
                f"{self._where}: its Ray Serve replicas were not running after "
                f"{_START_TIMEOUT_S:.0f} s; each claims {self._args.threads} CPU(s) "
                "(runtime.threads): check the cluster has room for scale.min_replicas of them"
            ) from None
        except Exception as error:
            raise StartupError(
                f"{self._where}: deploying it on Ray Serve failed: {error}"
            ) from None
        await self._batcher.start()

    def admit(self, deadline: float | None = None) -> float:
        """Refuse at once what cannot be served (the front's queue decides, as in one
        process: 503 not started, 429 full or too late)."""
        return self._batcher.admit(deadline)

    async def submit(self, item: Item, deadline: float | None = None) -> tuple[ItemResult, float]:
        """Run `item` on a replica; its result and the seconds it waited in the front."""
        return await self._batcher.submit(item, deadline)

    def _call(self, items: Sequence[Item]) -> list[ItemResult | BaseException]:
        """One batch, one Ray call (in a Batcher worker thread): each item's result or
        error; a lost replica fails them all with 503, no answer in time too."""
        response = self._handle.remote(list(items))
        try:
            outcomes: list[ItemResult | BaseException] = response.result(timeout_s=self._wait_s)
        except TimeoutError:  # Ray's GetTimeoutError is one
            response.cancel()
            lost: InferdError = ModelNotReadyError(
                f"{self._where}: its replica did not answer in {self._wait_s:.0f} s; retry",
                retry_after_s=1.0,
            )
            return [lost] * len(items)
        except Exception as error:
            lost = translate(error, self._where)
            logger.warning("%s: %s (%d items)", self._where, lost.message, len(items))
            return [lost] * len(items)
        return outcomes

    async def stop(self, drain: bool = True) -> None:
        """Answer (`drain`) or fail what is queued, then delete the deployment."""
        await self._batcher.stop(drain)
        if self._handle is None:
            return
        try:
            await asyncio.to_thread(self._serve.delete, self._app)
        except Exception:  # the cluster is gone already: nothing is left to delete
            logger.warning(
                "%s: deleting Ray Serve app %s failed", self._where, self._app, exc_info=True
            )


# --- the replica's side -----------------------------------------------------------------


class Replica:
    """One replica of a version's deployment: loads the version as the front did and runs
    its own Batcher over stages 2-5. Runs in a Ray worker process."""

    def __init__(self, args: ReplicaArgs) -> None:
        from inferd.hardware import share_cores
        from inferd.repository import load_model, make_batcher

        share_cores(args.threads)  # its runtime's threads when model.yaml leaves them at 0
        entry = load_model(Path(args.model_dir), args.trust_code, [args.version], args.allow_env)
        model = entry.versions.get(args.version)
        if model is None or model.pipeline is None:
            raise RuntimeError(
                f"{args.model_dir} version {args.version} did not load in the replica: "
                + ("; ".join(entry.errors) or "it is not a predictive model")
            )
        _, serve = import_ray()
        self.name: str = serve.get_replica_context().replica_id.to_full_id_str()
        self._model = model
        self._batcher = make_batcher(model)

    async def __call__(self, items: list[Item]) -> list[ItemResult | InferdError]:
        """Stages 2-5 for a batch sent by the front, through this replica's Batcher (with
        what other calls bring): each item's result, or its inferd error (returned, not
        raised: Ray would wrap it, and it concerns that item alone)."""
        await self._batcher.start()  # on the replica's loop; later calls return at once
        outcomes = await asyncio.gather(
            *(self._batcher.submit(item) for item in items), return_exceptions=True
        )
        answers: list[ItemResult | InferdError] = []
        for outcome in outcomes:
            if isinstance(outcome, InferdError):
                answers.append(outcome)
            elif isinstance(outcome, BaseException):
                answers.append(ModelError(f"{type(outcome).__name__}: {outcome}"))
            else:
                result, _ = outcome
                result.served_by = self.name
                answers.append(result)
        return answers

    def check_health(self) -> None:
        """Ray Serve replaces a replica whose health check raises: one whose batch hung."""
        if self._batcher.hung:
            raise RuntimeError(f"{self.name}: a batch hung; replace this replica")
