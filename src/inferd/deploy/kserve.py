"""KServe manifests for one model folder: a ServingRuntime that runs inferd as a custom
runtime over the Open Inference Protocol (V2, and V1), and the InferenceService that serves
the model through it.

KServe's storage initializer downloads the InferenceService's `storageUri` into /mnt/models,
so /mnt/models is the model folder itself (model.yaml, 1/, ...). `inferd serve` takes a
repository whose folders are named as their models, so the runtime first links
/var/lib/inferd/repository/<model name> to /mnt/models (the name comes from the
InferenceService's INFERD_MODEL_NAME) and serves that repository on port 8080, the port
KServe routes to. The runtime is the same for every model; a model's own settings (its
format, storage, resources, extra `inferd serve` flags) are in its InferenceService.

Both manifests are checked against KServe's own CRD schemas (vendored in kserve_crds/), with
unknown fields refused as `kubectl apply` refuses them, and their names against Kubernetes'
rules, before anyone gets them: an invalid manifest is never written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from inferd import __version__
from inferd.spec import Environment, load_spec
from inferd.spec.scale import ScaleSpec

Manifest = dict[str, Any]

DEFAULT_IMAGE = f"ghcr.io/inferd/inferd:{__version__}"
RUNTIME_NAME = "inferd"
DEFAULT_CPU = "1"
DEFAULT_MEMORY = "2Gi"
"""What KServe's own runtimes ask for; the example models need far less."""
USER_ID = 10001
"""The image's non-root user (Dockerfile)."""
MODEL_MOUNT = "/mnt/models"
"""Where KServe puts what `storageUri` names."""
DATA_DIR = "/var/lib/inferd"
"""A writable emptyDir: the repository's link, the store (prediction log, outbox) and
temporary files."""
PORT = 8080
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
MODEL_NAME_VARIABLE = "INFERD_MODEL_NAME"

SERVING_RUNTIME_API = ("serving.kserve.io/v1alpha1", "ServingRuntime")
INFERENCE_SERVICE_API = ("serving.kserve.io/v1beta1", "InferenceService")
_SCHEMA_FILES = {
    SERVING_RUNTIME_API: "servingruntimes.v1alpha1.json",
    INFERENCE_SERVICE_API: "inferenceservices.v1beta1.json",
}

STORAGE_SCHEMES = (
    "gs://",
    "s3://",
    "pvc://",
    "file://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "oci://",
    "oci+native://",
    "hf://",
)
"""The storageUri prefixes KServe accepts (its SupportedStorageURIPrefixList)."""

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL.pattern}(\.{_DNS_LABEL.pattern})*")
_ISVC_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # KServe's IsvcNameFmt
_QUANTITY = re.compile(
    r"\+?(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?"
)
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_START = f"""\
set -e
repository={DATA_DIR}/repository
export TMPDIR={DATA_DIR}/tmp
mkdir -p "$repository" "$TMPDIR"
ln -sfn {MODEL_MOUNT} "$repository/${{{MODEL_NAME_VARIABLE}:?set {MODEL_NAME_VARIABLE} \
to the name in the model folder's model.yaml}}"
exec inferd serve "$repository" --host 0.0.0.0 --port {PORT} --insecure \
--data-dir {DATA_DIR}/data "$@"
"""
"""The runtime's command: link the model folder into a repository and serve it, with the
InferenceService's args appended. Temporary files go to the writable volume too (the root
filesystem is read-only; Knative before 1.13 refuses a volume mounted at /tmp). --insecure:
on KServe, access is controlled in front of the pod (set INFERD_API_KEY in the
InferenceService's env to require a key in the pod as well)."""


class ManifestError(ValueError):
    """A manifest KServe or Kubernetes would refuse, or a model folder that cannot be
    deployed alone; the message says what to change."""


@dataclass(frozen=True)
class KServeOptions:
    """What `inferd export kserve` is told beyond the model folder."""

    storage_uri: str
    """Where KServe downloads the model folder's contents from (s3://bucket/models/digits)."""
    name: str | None = None
    """The InferenceService's name; None: the model's name."""
    namespace: str | None = None
    """None: whichever namespace `kubectl apply` uses."""
    image: str = DEFAULT_IMAGE
    cpu: str = DEFAULT_CPU
    """Requested and the limit, equal: a Guaranteed pod, whose cores are its own."""
    memory: str = DEFAULT_MEMORY
    workers: int | None = None
    """`inferd serve --workers` in the pod; None: its default."""
    trust_code: bool = False
    allow_env: tuple[str, ...] = ()
    runtime: str = RUNTIME_NAME


@dataclass(frozen=True)
class KServeManifests:
    """The two manifests, validated, and notes for the person deploying them."""

    serving_runtime: Manifest
    inference_service: Manifest
    notes: tuple[str, ...] = field(default=())

    def documents(self) -> list[Manifest]:
        return [self.serving_runtime, self.inference_service]

    def to_yaml(self) -> str:
        """Both as one multi-document YAML stream, for `kubectl apply -f -`."""
        return "---\n".join(dump_yaml(document) for document in self.documents())

    def write(self, folder: Path) -> list[Path]:
        """Write each to its own file in `folder` (made if missing), for `kubectl apply -f`."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = [
            folder / f"servingruntime-{self.serving_runtime['metadata']['name']}.yaml",
            folder / f"inferenceservice-{self.inference_service['metadata']['name']}.yaml",
        ]
        for path, document in zip(paths, self.documents(), strict=True):
            path.write_text(dump_yaml(document), encoding="utf-8")
        return paths


@dataclass(frozen=True)
class _Model:
    name: str
    backend: str
    scale: ScaleSpec | None = None
    """model.yaml's `scale:`, when it has one: the predictor's replicas."""


def kserve_manifests(model_dir: Path, options: KServeOptions) -> KServeManifests:
    """The ServingRuntime and InferenceService that serve the model in `model_dir`, checked
    against KServe's schemas; ManifestError or SpecError says what to fix."""
    _check_options(options)
    model = _read_model(model_dir, options)
    name = options.name if options.name is not None else _default_name(model.name)
    runtime = _serving_runtime(options)
    service = _inference_service(model, name, options)
    for manifest in (runtime, service):
        validate(manifest)
    return KServeManifests(runtime, service, tuple(_notes(model, options)))


def model_format(backend: str) -> str:
    """The KServe model format a model is declared as: onnx for an ONNX model, else inferd
    (a model folder only inferd serves: python code, a torch generator)."""
    return "onnx" if backend == "onnx" else "inferd"


def _serving_runtime(options: KServeOptions) -> Manifest:
    """inferd as a KServe runtime: the same for every model (it reads the model's name from
    the InferenceService's env)."""
    container: Manifest = {
        "name": "kserve-container",
        "image": options.image,
        "command": ["/bin/sh", "-c", _START, "inferd-kserve"],
        "ports": [{"name": "http1", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": PORT},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        # The server answers only once its models are loaded: give loading a minute.
        "livenessProbe": {
            "httpGet": {"path": LIVE_PATH, "port": PORT},
            "initialDelaySeconds": 60,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "inferd-data", "mountPath": DATA_DIR}],
    }
    return {
        "apiVersion": SERVING_RUNTIME_API[0],
        "kind": SERVING_RUNTIME_API[1],
        "metadata": _metadata(options.runtime, options.namespace),
        "spec": {
            "annotations": {
                "prometheus.kserve.io/port": str(PORT),
                "prometheus.kserve.io/path": "/metrics",
            },
            "supportedModelFormats": [
                {"name": "onnx", "autoSelect": False},
                {"name": "inferd", "autoSelect": False},
            ],
            "protocolVersions": ["v2", "v1"],
            "containers": [container],
            "volumes": [{"name": "inferd-data", "emptyDir": {}}],
        },
    }


def _inference_service(model: _Model, name: str, options: KServeOptions) -> Manifest:
    """One model on the inferd runtime: its format, storage, resources and serve flags."""
    args: list[str] = []
    if options.workers is not None:
        args += ["--workers", str(options.workers)]
    if options.trust_code:
        args.append("--trust-code")
    for variable in options.allow_env:
        args += ["--allow-env", variable]
    resources_ = {"cpu": options.cpu, "memory": options.memory}
    predictor_model: Manifest = {
        "modelFormat": {"name": model_format(model.backend)},
        "runtime": options.runtime,
        "protocolVersion": "v2",
        "storageUri": options.storage_uri,
        "env": [{"name": MODEL_NAME_VARIABLE, "value": model.name}],
        "resources": {"requests": dict(resources_), "limits": dict(resources_)},
    }
    if args:
        predictor_model["args"] = args
    predictor: Manifest = {"model": predictor_model}
    if model.scale is not None:  # the same replicas as on Ray Serve, scaled by concurrency
        predictor["minReplicas"] = model.scale.min_replicas
        predictor["maxReplicas"] = model.scale.most
        if model.scale.target_ongoing_requests is not None:
            predictor["scaleMetric"] = "concurrency"
            predictor["scaleTarget"] = max(1, round(model.scale.target_ongoing_requests))
    return {
        "apiVersion": INFERENCE_SERVICE_API[0],
        "kind": INFERENCE_SERVICE_API[1],
        "metadata": _metadata(name, options.namespace),
        "spec": {"predictor": predictor},
    }


def validate(manifest: Manifest) -> None:
    """Check a ServingRuntime or InferenceService against KServe's CRD schema, refusing
    unknown fields, and its metadata against Kubernetes' name rules; ManifestError lists
    every problem by its path."""
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key not in _SCHEMA_FILES:
        known = ", ".join(f"{kind} ({api})" for api, kind in _SCHEMA_FILES)
        raise ManifestError(f"cannot check a {key[1]} ({key[0]}); known: {known}")
    from jsonschema import Draft4Validator  # OpenAPI v3.0 schemas are draft 4's dialect

    schema = _schema(_SCHEMA_FILES[key])
    problems = [
        f"{_path(error.absolute_path)}: {error.message}"
        for error in Draft4Validator(schema).iter_errors(manifest)
    ]
    problems += [f"{path}: unknown field" for path in _unknown_fields(manifest, schema, ())]
    problems += _metadata_problems(manifest.get("metadata"), kind=str(key[1]))
    if problems:
        listed = "\n".join(f"  {problem}" for problem in sorted(set(problems)))
        raise ManifestError(f"the {key[1]} is not valid:\n{listed}")


def name_problem(name: str, kind: str = "InferenceService") -> str | None:
    """Why `name` cannot name a `kind` (None when it can). An InferenceService's name is a
    DNS-1035 label (KServe's rule: a lowercase letter first), a namespace's a DNS-1123 label
    (at most 63 characters), any other object's a DNS-1123 subdomain (labels joined by dots,
    at most 253)."""
    if kind == "InferenceService":
        pattern, most, rule = _ISVC_NAME, 63, "a lowercase letter"
    elif kind == "Namespace":
        pattern, most, rule = _DNS_LABEL, 63, "a lowercase letter or digit"
    else:
        pattern, most, rule = _DNS_SUBDOMAIN, 253, "a lowercase letter or digit"
    if not name:
        return f"a {kind} needs a name"
    if len(name) > most:
        return f"{kind} name {name!r} is {len(name)} characters long; at most {most}"
    if not pattern.fullmatch(name):
        dots = "" if most == 63 else ", '.'"
        return (
            f"{kind} name {name!r} must be lowercase letters, digits{dots} and '-', starting "
            f"with {rule} and ending with a letter or digit"
        )
    return None


def dump_yaml(document: Manifest) -> str:
    """YAML as a person would write it: keys in the order built, scripts as blocks."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def _read_model(model_dir: Path, options: KServeOptions) -> _Model:
    """The model's name and backend, read with inferd's own spec loader as the pod will."""
    if not model_dir.is_dir():
        raise ManifestError(f"{model_dir} is not a folder; give a model folder (with model.yaml)")
    environment = Environment.for_process(options.trust_code, options.allow_env)
    spec = load_spec(model_dir, environment)
    versions = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    if spec is None and not versions:
        raise ManifestError(
            f"{model_dir} is not a model folder: it has no model.yaml and no version folder "
            "(1/model.onnx, ...); give the folder of one model, not a repository of them"
        )
    if spec is not None and spec.cascade is not None:
        raise ManifestError(
            f"{model_dir} is a cascade of {spec.cascade.first!r} and {spec.cascade.then!r}, "
            "which are other model folders: KServe mounts one model folder per "
            "InferenceService, so serve the cascade with its members from one repository "
            "(the Docker image), or deploy a member alone"
        )
    if spec is not None and not versions:
        raise ManifestError(
            f"{model_dir} has no version folder: put the model's files in {model_dir}/1/"
        )
    if spec is None:
        return _Model(name=model_dir.name, backend="onnx")
    if spec.backend == "python" and not options.trust_code:
        raise ManifestError(
            f"model {spec.name!r} runs Python code from its folder (backend: python): "
            "pass --trust-code to let the pod run it"
        )
    scale = spec.scale if "scale" in spec.model_fields_set else None
    return _Model(name=spec.name, backend=spec.backend, scale=scale)


def _default_name(model_name: str) -> str:
    """The model's own name, when it is a valid InferenceService name."""
    if name_problem(model_name) is None:
        return model_name
    candidate = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")
    if not candidate[:1].isalpha():
        candidate = f"model-{candidate}".rstrip("-")
    raise ManifestError(
        f"the model's name {model_name!r} cannot name an InferenceService (lowercase "
        f"letters, digits and '-', starting with a letter); give one with --name, "
        f"e.g. --name {candidate[:63].rstrip('-')}"
    )


def _check_options(options: KServeOptions) -> None:
    problems: list[str] = []
    if not options.storage_uri.startswith(STORAGE_SCHEMES):
        problems.append(
            f"storage URI {options.storage_uri!r} is not one KServe can download: it starts "
            f"with one of {', '.join(STORAGE_SCHEMES)} (e.g. s3://bucket/models/digits)"
        )
    names = [(options.name, "InferenceService"), (options.namespace, "Namespace")]
    for name, kind in [*names, (options.runtime, "ServingRuntime")]:
        problem = None if name is None else name_problem(name, kind)
        if problem is not None:
            problems.append(problem)
    if not options.image or any(character.isspace() for character in options.image):
        problems.append(f"image {options.image!r} is not an image reference")
    for flag, quantity in (("cpu", options.cpu), ("memory", options.memory)):
        match = _QUANTITY.fullmatch(quantity)
        if match is None or float(match["number"]) <= 0:
            problems.append(
                f"{flag} {quantity!r} is not a positive Kubernetes quantity "
                "(e.g. --cpu 1, --cpu 500m, --memory 2Gi)"
            )
    if options.workers is not None and options.workers < 1:
        problems.append(f"workers must be at least 1; got {options.workers}")
    problems += [
        f"--allow-env {variable!r} is not an environment variable's name"
        for variable in options.allow_env
        if not _VARIABLE_NAME.fullmatch(variable)
    ]
    if problems:
        raise ManifestError("; ".join(problems))


def _notes(model: _Model, options: KServeOptions) -> Iterator[str]:
    yield (
        f"upload the model folder's contents so that {options.storage_uri.rstrip('/')}"
        "/model.yaml and its version folders exist; KServe mounts them at /mnt/models"
    )
    if model.backend == "torch":
        yield (
            f"model {model.name!r} runs on torch, which the default image leaves out: build "
            "one with `docker build --build-arg EXTRAS=torch` and pass it as --image"
        )
    cores = _cores(options.cpu)
    if options.workers is not None and cores is not None and options.workers > max(cores, 1):
        yield (
            f"--workers {options.workers} on {options.cpu} CPU: the workers share those cores; "
            "more workers than cores adds memory, not speed"
        )
    for variable in options.allow_env:
        yield (
            f"model.yaml reads ${{{variable}}}: set it in the InferenceService's "
            "spec.predictor.model.env (from a Secret if it is one)"
        )


def _cores(cpu: str) -> float | None:
    """A CPU quantity in cores (1, 1.5, 500m); None for forms never used for CPU."""
    match = re.fullmatch(r"\+?([0-9]*\.?[0-9]+)(m?)", cpu)
    if match is None:
        return None
    return float(match[1]) / (1000 if match[2] else 1)


def _metadata(name: str, namespace: str | None) -> Manifest:
    metadata: Manifest = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {
        "app.kubernetes.io/name": "inferd",
        "app.kubernetes.io/version": __version__,
    }
    return metadata


def _metadata_problems(metadata: object, kind: str) -> list[str]:
    """The CRD schemas leave metadata open: the name rules Kubernetes applies on its own."""
    if not isinstance(metadata, dict):
        return ["metadata: missing (it needs at least a name)"]
    problems = [f"metadata.{key}: unknown field" for key in metadata if key not in _METADATA]
    name_rule = name_problem(str(metadata.get("name") or ""), kind)
    if name_rule:
        problems.append(f"metadata.name: {name_rule}")
    if "namespace" in metadata:
        namespace_rule = name_problem(str(metadata["namespace"] or ""), "Namespace")
        if namespace_rule:
            problems.append(f"metadata.namespace: {namespace_rule}")
    for key in ("labels", "annotations"):
        value = metadata.get(key, {})
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            problems.append(f"metadata.{key}: must map strings to strings")
    return problems


_METADATA = {"name", "namespace", "labels", "annotations"}
"""The metadata fields a manifest written here sets."""


def _unknown_fields(value: object, schema: Manifest, at: tuple[str | int, ...]) -> Iterator[str]:
    """Paths in `value` the schema does not declare. A CRD's structural schema never says
    additionalProperties: false (the API server drops unknown fields, or refuses them under
    kubectl's default strict validation), so JSON Schema alone accepts a misspelt field."""
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if isinstance(properties, dict) and key in properties:
                yield from _unknown_fields(item, properties[key], (*at, key))
            elif isinstance(additional, dict):
                yield from _unknown_fields(item, additional, (*at, key))
            elif isinstance(properties, dict):
                yield _path((*at, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], (*at, index))


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


@cache
def _schema(file: str) -> Manifest:
    loaded: Manifest = json.loads(
        resources.files("inferd.deploy").joinpath("kserve_crds", file).read_text("utf-8")
    )
    return loaded
