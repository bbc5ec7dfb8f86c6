"""KServe manifests from real model folders, checked against KServe's own CRD schemas (and
broken copies shown to fail them), Kubernetes' name rules, and the runtime's start script
run by a real shell."""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferd.api.routes import Api
from inferd.deploy import kserve
from inferd.deploy.kserve import (
    DATA_DIR,
    MODEL_MOUNT,
    KServeManifests,
    KServeOptions,
    ManifestError,
    kserve_manifests,
    name_problem,
    validate,
)
from inferd.errors import SpecError

ROOT = Path(__file__).resolve().parents[3]
REPOSITORY = ROOT / "model_repository"
CRDS = ROOT / "src" / "inferd" / "deploy" / "kserve_crds"
OPTIONS = KServeOptions(storage_uri="s3://models/digits")


@pytest.fixture(scope="module")
def digits() -> KServeManifests:
    return kserve_manifests(REPOSITORY / "digits", OPTIONS)


def _container(manifests: KServeManifests) -> dict[str, Any]:
    container: dict[str, Any] = manifests.serving_runtime["spec"]["containers"][0]
    return container


def _model(manifests: KServeManifests) -> dict[str, Any]:
    model: dict[str, Any] = manifests.inference_service["spec"]["predictor"]["model"]
    return model


# --- what is written ----------------------------------------------------------------------


def test_the_runtime_runs_inferd_as_a_v2_custom_runtime(digits: KServeManifests) -> None:
    runtime = digits.serving_runtime
    assert (runtime["apiVersion"], runtime["kind"]) == kserve.SERVING_RUNTIME_API
    assert runtime["metadata"]["name"] == "inferd"
    assert "v2" in runtime["spec"]["protocolVersions"]
    formats = {f["name"]: f for f in runtime["spec"]["supportedModelFormats"]}
    assert set(formats) == {"onnx", "inferd"}
    assert not any(f["autoSelect"] for f in formats.values())  # never taken for others' models
    container = _container(digits)
    assert container["name"] == "kserve-container"
    assert container["image"] == f"ghcr.io/inferd/inferd:{kserve.__version__}"
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    command = container["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    assert 'exec inferd serve "$repository" --host 0.0.0.0 --port 8080 --insecure' in command[2]
    assert "--data-dir /var/lib/inferd/data" in command[2]
    assert "args" not in container  # a model's flags come from its InferenceService
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == kserve.USER_ID
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    # The one writable place a read-only root needs; not /tmp, which Knative before 1.13
    # refuses as a mount path (TMPDIR points into the volume instead).
    assert container["volumeMounts"] == [{"name": "inferd-data", "mountPath": DATA_DIR}]
    assert digits.serving_runtime["spec"]["volumes"] == [{"name": "inferd-data", "emptyDir": {}}]
    assert f"export TMPDIR={DATA_DIR}/tmp" in command[2]


def test_the_probes_ask_open_health_routes_on_the_served_port(digits: KServeManifests) -> None:
    container = _container(digits)
    api: Any = Api.__new__(Api)  # only the routes table and the key check are needed
    protocols = len(inspect.signature(Api._routes).parameters) - 1
    router = Api._routes(api, *(_Stub() for _ in range(protocols)))
    api.api_key = "a key no probe sends"
    paths = []
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == container["ports"][0]["containerPort"]
        router.match("GET", get["path"])  # raises when not routed
        Api.admit(api, "GET", get["path"], {})  # raises when the route needs the key
        paths.append(get["path"])
    assert paths == ["/v2/health/ready", "/v2/health/live"]


class _Stub:
    def __getattr__(self, name: str) -> Any:
        return None


def test_the_inference_service_names_the_model_its_format_and_storage(
    digits: KServeManifests,
) -> None:
    service = digits.inference_service
    assert (service["apiVersion"], service["kind"]) == kserve.INFERENCE_SERVICE_API
    assert service["metadata"]["name"] == "digits"
    assert "namespace" not in service["metadata"]
    model = _model(digits)
    assert model["modelFormat"] == {"name": "onnx"}
    assert model["runtime"] == "inferd"
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"] == "s3://models/digits"
    assert model["env"] == [{"name": "INFERD_MODEL_NAME", "value": "digits"}]
    assert model["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    assert "args" not in model
    assert any("s3://models/digits/model.yaml" in note for note in digits.notes)


def test_model_yaml_scale_sets_the_predictors_replicas(tmp_path: Path) -> None:
    shutil.copytree(REPOSITORY / "digits", tmp_path / "digits")
    spec_file = tmp_path / "digits" / "model.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    assert "scale" not in spec
    unscaled = kserve_manifests(tmp_path / "digits", OPTIONS).inference_service
    assert set(unscaled["spec"]["predictor"]) == {"model"}  # KServe's own defaults
    spec["scale"] = {"min_replicas": 2, "max_replicas": 5, "target_ongoing_requests": 12.4}
    spec_file.write_text(yaml.safe_dump(spec))
    predictor = kserve_manifests(tmp_path / "digits", OPTIONS).inference_service["spec"][
        "predictor"
    ]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 5)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 12)


def test_options_reach_the_manifests() -> None:
    options = KServeOptions(
        storage_uri="pvc://models/sunspots/",
        name="spots",
        namespace="ml-team",
        image="registry.example/inferd:dev",
        cpu="500m",
        memory="512Mi",
        workers=2,
        allow_env=("REVIEW_WEBHOOK_URL",),
        runtime="inferd-dev",
    )
    manifests = kserve_manifests(REPOSITORY / "sunspots", options)
    assert manifests.serving_runtime["metadata"]["name"] == "inferd-dev"
    assert {m["metadata"]["namespace"] for m in manifests.documents()} == {"ml-team"}
    assert manifests.inference_service["metadata"]["name"] == "spots"
    assert _container(manifests)["image"] == "registry.example/inferd:dev"
    model = _model(manifests)
    assert model["runtime"] == "inferd-dev"
    assert model["args"] == ["--workers", "2", "--allow-env", "REVIEW_WEBHOOK_URL"]
    assert model["env"][0]["value"] == "sunspots"  # the model's name, not the service's
    assert model["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert any("REVIEW_WEBHOOK_URL" in note for note in manifests.notes)


@pytest.mark.parametrize(
    ("cpu", "workers", "noted"),
    [("1", 2, True), ("500m", 1, False), ("2", 2, False), ("2500m", 3, True), ("2", None, False)],
)
def test_more_workers_than_cores_is_noted(cpu: str, workers: int | None, noted: bool) -> None:
    options = KServeOptions(storage_uri="s3://m/digits", cpu=cpu, workers=workers)
    notes = kserve_manifests(REPOSITORY / "digits", options).notes
    assert any("the workers share those cores" in note for note in notes) is noted


def test_a_torch_model_is_an_inferd_format_model_with_a_note_on_the_image() -> None:
    manifests = kserve_manifests(REPOSITORY / "pycoder", OPTIONS)
    assert _model(manifests)["modelFormat"] == {"name": "inferd"}
    assert any("EXTRAS=torch" in note for note in manifests.notes)


def test_every_example_model_gives_valid_manifests() -> None:
    for model_dir in sorted(p for p in REPOSITORY.iterdir() if (p / "model.yaml").exists()):
        manifests = kserve_manifests(model_dir, OPTIONS)
        for document in manifests.documents():
            validate(document)  # again, explicitly


def test_a_plain_onnx_folder_without_model_yaml_is_named_after_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    shutil.copytree(REPOSITORY / "diabetes" / "1", folder / "1")
    manifests = kserve_manifests(folder, OPTIONS)
    assert _model(manifests)["env"][0]["value"] == "plain"
    assert _model(manifests)["modelFormat"] == {"name": "onnx"}


def test_yaml_and_files_hold_the_same_documents(digits: KServeManifests, tmp_path: Path) -> None:
    text = digits.to_yaml()
    assert list(yaml.safe_load_all(text)) == digits.documents()
    assert "- |\n" in text  # the start script reads as a block, not one escaped line
    paths = digits.write(tmp_path / "out")
    assert [p.name for p in paths] == ["servingruntime-inferd.yaml", "inferenceservice-digits.yaml"]
    assert [yaml.safe_load(p.read_text()) for p in paths] == digits.documents()


# --- validation against KServe's schemas --------------------------------------------------

Change = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Change:
    def change(document: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = document
        for part in parents:
            target = target[part]
        target[last] = value

    return change


def _delete(path: str) -> Change:
    def change(document: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = document
        for part in parents:
            target = target[part]
        del target[last]

    return change


CONTAINER = "spec.containers.0"
MODEL = "spec.predictor.model"


@pytest.mark.parametrize(
    ("which", "change", "says"),
    [
        (
            "runtime",
            _set(f"{CONTAINER}.ports.0.containerPort", "8080"),
            "spec.containers[0].ports[0].containerPort: '8080' is not of type 'integer'",
        ),
        (
            "runtime",
            _set(f"{CONTAINER}.readinessProbe.periodSeconds", "often"),
            "periodSeconds: 'often' is not of type 'integer'",
        ),
        (
            "runtime",
            _set("spec.protocolVersions", "v2"),
            "spec.protocolVersions: 'v2' is not of type 'array'",
        ),
        ("runtime", _delete(f"{CONTAINER}.name"), "spec.containers[0]: 'name' is a required"),
        (
            "runtime",
            _set(f"{CONTAINER}.securityContext.runAsUsr", 10001),
            "spec.containers[0].securityContext.runAsUsr: unknown field",
        ),
        (
            "service",
            _set(f"{MODEL}.resources.limits.cpu", "2 cores"),
            "spec.predictor.model.resources.limits.cpu: '2 cores' does not match",
        ),
        ("service", _delete(f"{MODEL}.modelFormat.name"), "modelFormat: 'name' is a required"),
        ("service", _set(f"{MODEL}.storageURI", "s3://x"), "storageURI: unknown field"),
        ("service", _set(f"{MODEL}.args", "--workers 2"), "'--workers 2' is not of type 'array'"),
        ("service", _set("metadata.name", "Digits"), "metadata.name: InferenceService name"),
        ("service", _set("metadata.name", "7digits"), "starting with a lowercase letter"),
        ("service", _set("metadata.namespace", "ML"), "metadata.namespace: Namespace name"),
        ("service", _set("metadata.uid", "x"), "metadata.uid: unknown field"),
        ("service", _set("metadata.labels", {"a": 1}), "metadata.labels: must map strings"),
        ("service", _delete("metadata"), "metadata: missing"),
        ("service", _set("kind", "Service"), "cannot check a Service"),
    ],
)
def test_a_broken_manifest_fails_validation(
    digits: KServeManifests, which: str, change: Change, says: str
) -> None:
    manifest = copy.deepcopy(
        digits.serving_runtime if which == "runtime" else digits.inference_service
    )
    validate(manifest)  # valid before the change
    change(manifest)
    with pytest.raises(ManifestError) as raised:
        validate(manifest)
    assert says in str(raised.value), str(raised.value)


def test_every_problem_is_listed_at_once(digits: KServeManifests) -> None:
    manifest = copy.deepcopy(digits.inference_service)
    _set(f"{MODEL}.resources.limits.cpu", "lots")(manifest)
    _set(f"{MODEL}.runtme", "inferd")(manifest)
    with pytest.raises(ManifestError, match="InferenceService is not valid") as raised:
        validate(manifest)
    assert "limits.cpu" in str(raised.value) and "runtme: unknown field" in str(raised.value)


def test_the_vendored_schemas_say_where_they_come_from() -> None:
    readme = (CRDS / "README.md").read_text(encoding="utf-8")
    commit = re.search(r"commit ([0-9a-f]{40})", readme)
    assert commit is not None
    for file in ("servingruntimes.v1alpha1.json", "inferenceservices.v1beta1.json"):
        schema = json.loads((CRDS / file).read_text(encoding="utf-8"))
        assert schema["$comment"].startswith("kserve/kserve config/crd/full/")
        assert commit[1] in schema["$comment"]
        assert schema["properties"]["spec"]["type"] == "object"
    assert "Apache License" in (CRDS / "LICENSE").read_text(encoding="utf-8")


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "fine"),
    [
        ("digits", "InferenceService", True),
        ("support-intent", "InferenceService", True),
        ("a", "InferenceService", True),
        ("a" * 63, "InferenceService", True),
        ("a" * 64, "InferenceService", False),
        ("7digits", "InferenceService", False),  # KServe's rule: a letter first
        ("7digits", "Namespace", True),
        ("Digits", "InferenceService", False),
        ("support_intent", "InferenceService", False),
        ("digits-", "InferenceService", False),
        ("", "InferenceService", False),
        ("inferd.v1", "ServingRuntime", True),
        ("inferd.v1", "Namespace", False),
        ("inferd..v1", "ServingRuntime", False),
        ("a" * 254, "ServingRuntime", False),
    ],
)
def test_name_rules(name: str, kind: str, fine: bool) -> None:
    assert (name_problem(name, kind) is None) is fine


def test_a_model_name_kserve_refuses_asks_for_a_name(tmp_path: Path) -> None:
    folder = tmp_path / "Support_Intent"
    shutil.copytree(REPOSITORY / "support-intent", folder)
    spec = (folder / "model.yaml").read_text(encoding="utf-8")
    (folder / "model.yaml").write_text(
        spec.replace("name: support-intent", "name: Support_Intent"), encoding="utf-8"
    )
    with pytest.raises(
        ManifestError, match=re.escape("give one with --name, e.g. --name support-intent")
    ):
        kserve_manifests(folder, OPTIONS)
    named = kserve_manifests(folder, KServeOptions(storage_uri="s3://m/si", name="si"))
    assert _model(named)["env"][0]["value"] == "Support_Intent"


# --- what cannot be exported, and why -------------------------------------------------------


def _python_model(folder: Path) -> Path:
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text("", encoding="utf-8")
    (folder / "model.yaml").write_text(
        "backend: python\ninputs: [{name: x, datatype: FP32, shape: [1]}]\n"
        "outputs: [{name: y, datatype: FP32, shape: [1]}]\n",
        encoding="utf-8",
    )
    return folder


def test_a_python_model_needs_trust_code(tmp_path: Path) -> None:
    folder = _python_model(tmp_path / "py")
    with pytest.raises(ManifestError, match="pass --trust-code to let the pod run it"):
        kserve_manifests(folder, OPTIONS)
    trusted = KServeOptions(storage_uri="s3://m/py", trust_code=True)
    manifests = kserve_manifests(folder, trusted)
    assert _model(manifests)["args"] == ["--trust-code"]
    assert _model(manifests)["modelFormat"] == {"name": "inferd"}


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda root: root / "missing", "is not a folder"),
        (lambda root: root, "is not a model folder"),
        (lambda root: REPOSITORY, "is not a model folder"),  # a repository, not a model
        (
            lambda root: _yaml(root / "cascade", "cascade: {first: a, then: b, when: 'true'}\n"),
            "is a cascade of 'a' and 'b'",
        ),
        (lambda root: _yaml(root / "noversion", "backend: onnx\n"), "has no version folder"),
    ],
)
def test_a_folder_that_cannot_be_deployed_alone_says_why(
    tmp_path: Path, make: Callable[[Path], Path], says: str
) -> None:
    with pytest.raises(ManifestError, match=says):
        kserve_manifests(make(tmp_path), OPTIONS)


def _yaml(folder: Path, text: str, versions: bool = False) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.yaml").write_text(text, encoding="utf-8")
    if versions:
        (folder / "1").mkdir()
    return folder


def test_a_bad_model_yaml_is_reported_by_the_spec_loader(tmp_path: Path) -> None:
    folder = _yaml(tmp_path / "bad", "batching: {max_batch: 2}\n", versions=True)
    with pytest.raises(SpecError, match=r"batching.max_batch: unknown key"):
        kserve_manifests(folder, OPTIONS)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"storage_uri": "models/digits"}, "is not one KServe can download"),
        ({"storage_uri": "ftp://host/digits"}, "is not one KServe can download"),
        ({"name": "Digits"}, "InferenceService name 'Digits'"),
        ({"namespace": "ML"}, "Namespace name 'ML'"),
        ({"runtime": "Inferd"}, "ServingRuntime name 'Inferd'"),
        ({"image": ""}, "is not an image reference"),
        ({"image": "inferd latest"}, "is not an image reference"),
        ({"cpu": "2 cores"}, "cpu '2 cores' is not a positive Kubernetes quantity"),
        ({"cpu": "-1"}, "cpu '-1' is not a positive Kubernetes quantity"),
        ({"memory": "0"}, "memory '0' is not a positive Kubernetes quantity"),
        ({"memory": "2GB"}, "memory '2GB' is not a positive Kubernetes quantity"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"allow_env": ("A-B",)}, "--allow-env 'A-B' is not an environment variable's name"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], says: str) -> None:
    given = {"storage_uri": "s3://models/digits", **options}
    with pytest.raises(ManifestError, match=re.escape(says)):
        kserve_manifests(REPOSITORY / "digits", KServeOptions(**given))


@pytest.mark.parametrize("quantity", ["1", "500m", "0.5", "2Gi", "512Mi", "1e3", "1.5G"])
def test_kubernetes_quantities_are_taken(quantity: str) -> None:
    kserve_manifests(
        REPOSITORY / "digits", KServeOptions(storage_uri="s3://m", cpu=quantity, memory=quantity)
    )


# --- the runtime's start script, run by a real shell ----------------------------------------


def _start(tmp_path: Path, digits: KServeManifests, env: dict[str, str], *args: str) -> Any:
    """Run the runtime's command with its paths moved under tmp_path and a fake `inferd` that
    prints what it was asked and what the repository holds."""
    mount, data, bin_dir = tmp_path / "mnt" / "models", tmp_path / "data", tmp_path / "bin"
    shutil.copytree(REPOSITORY / "digits", mount)
    bin_dir.mkdir()
    fake = bin_dir / "inferd"
    fake.write_text(
        '#!/bin/sh\necho "argv: $*"\nfor entry in "$2"/*; do\n'
        '  echo "entry: $(basename "$entry") -> $(readlink "$entry")"\ndone\n'
        'echo "tmp: $TMPDIR"; test -d "$TMPDIR"\n',
        encoding="utf-8",
    )
    fake.chmod(0o755)
    command = list(_container(digits)["command"])
    command[2] = command[2].replace(MODEL_MOUNT, str(mount)).replace(DATA_DIR, str(data))
    environment = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(
        [*command, *args], env=environment, capture_output=True, text=True, timeout=30
    )


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_the_start_script_links_the_model_and_passes_the_service_args(
    tmp_path: Path, digits: KServeManifests
) -> None:
    done = _start(tmp_path, digits, {"INFERD_MODEL_NAME": "digits"}, "--workers", "2")
    assert done.returncode == 0, done.stderr
    repository = tmp_path / "data" / "repository"
    assert done.stdout.splitlines() == [
        f"argv: serve {repository} --host 0.0.0.0 --port 8080 --insecure "
        f"--data-dir {tmp_path / 'data' / 'data'} --workers 2",
        f"entry: digits -> {tmp_path / 'mnt' / 'models'}",
        f"tmp: {tmp_path / 'data' / 'tmp'}",
    ]
    assert (repository / "digits" / "model.yaml").is_file()  # a repository inferd can read


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_the_start_script_says_what_is_missing(tmp_path: Path, digits: KServeManifests) -> None:
    done = _start(tmp_path, digits, {})
    assert done.returncode != 0
    assert "set INFERD_MODEL_NAME to the name in the model folder's model.yaml" in done.stderr
    assert "argv:" not in done.stdout
