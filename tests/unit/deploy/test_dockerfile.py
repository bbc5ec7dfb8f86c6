"""The Dockerfile, read by a small parser (no Docker daemon needed): the properties that
matter, each checked by `problems`, which is shown to catch each one on a broken copy."""

from __future__ import annotations

import inspect
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferd.api.routes import Api
from inferd.deploy.kserve import USER_ID

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON-array form's words, or None for the shell form."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":  # HEALTHCHECK [--flags] CMD [...]
            text = text.partition("CMD ")[2]
        try:
            words = json.loads(text)
        except json.JSONDecodeError:
            return None
        return words if isinstance(words, list) and all(isinstance(w, str) for w in words) else None

    def flags(self) -> dict[str, str]:
        """`--name=value` flags at the start (COPY --from=..., HEALTHCHECK --interval=...)."""
        return dict(word[2:].partition("=")[::2] for word in self.words() if word.startswith("--"))

    def words(self) -> list[str]:
        return shlex.split(self.arguments)


def parse(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped
    (Docker drops comment lines inside a continuation too)."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The build stages, each from its FROM on."""
    found: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def _only(stage: list[Instruction], keyword: str) -> Instruction | None:
    matching = [i for i in stage if i.keyword == keyword]
    return matching[-1] if matching else None  # the last one wins in Docker


def _health_route_is_served(path: str) -> bool:
    """Whether the routes table has `path` and lets it through without an API key."""
    api: Any = Api.__new__(Api)  # only the routes table and the key check are needed
    protocols = len(inspect.signature(Api._routes).parameters) - 1
    router = Api._routes(api, *(_Stub() for _ in range(protocols)))
    try:
        router.match("GET", path)
    except Exception:
        return False
    api.api_key = "a key the health check does not send"
    try:
        Api.admit(api, "GET", path, {})
    except Exception:
        return False
    return True


class _Stub:
    def __getattr__(self, name: str) -> Any:
        return None


_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|--api-key|://[^/\s:@]+:[^/\s@]+@"
)


def problems(text: str, ignore: str, root: Path = ROOT) -> list[str]:
    """What is wrong with a Dockerfile (`text`) and its .dockerignore (`ignore`)."""
    found: list[str] = []
    instructions = parse(text)
    built = stages(instructions)
    if len(built) < 2:
        return [f"{len(built)} stage(s): build in one stage, copy only the result to a slim one"]
    final = built[-1]
    image = final[0].words()[0]
    if not re.fullmatch(r"python:3\.\d+-slim(-[a-z]+)?", image):
        found.append(f"the final stage is FROM {image}, not a slim Python image")
    if not any(i.keyword == "COPY" and "from" in i.flags() for i in final):
        found.append("the final stage copies nothing from the builder")

    # A fixed non-root user before the entrypoint, never switched back.
    entrypoint = _only(final, "ENTRYPOINT")
    users = [i for i in final if i.keyword == "USER"]
    if not users:
        found.append("the final stage runs as root: it sets no USER")
    else:
        user = users[-1].arguments.split(":")[0]
        if not user.isdigit() or int(user) == 0:
            found.append(f"USER {users[-1].arguments}: give a numeric, non-zero uid")
        elif int(user) != USER_ID:
            found.append(f"USER {user} is not the uid KServe's runtime runs as ({USER_ID})")
        if entrypoint is not None and users[-1].line > entrypoint.line:
            found.append("USER comes after ENTRYPOINT")

    # The entrypoint serves; the default command serves the baked repository on all
    # interfaces, with no key baked in and not --insecure.
    if entrypoint is None or entrypoint.exec_form() != ["inferd", "serve"]:
        found.append('the ENTRYPOINT is not ["inferd", "serve"] in exec form')
    cmd = _only(final, "CMD")
    words = cmd.exec_form() if cmd is not None else None
    port = None
    if not words:
        found.append("the CMD is missing or not in exec form")
    else:
        copied_to = {i.words()[-1].rstrip("/") for i in final if i.keyword == "COPY"}
        if words[0] not in copied_to:
            found.append(f"the CMD serves {words[0]}, which nothing is copied to")
        if "--insecure" in words:
            found.append("the CMD serves without an API key (--insecure) by default")
        options = dict(zip(words[1::2], words[2::2], strict=False))
        if options.get("--host") != "0.0.0.0":
            found.append("the CMD does not listen on 0.0.0.0 (unreachable from outside)")
        port = options.get("--port")
        data_dir = options.get("--data-dir")
        volumes = {v for i in final if i.keyword == "VOLUME" for v in i.exec_form() or []}
        if data_dir not in volumes:
            found.append(f"the store (--data-dir {data_dir}) is not on a VOLUME")
    exposed = {i.arguments.split("/")[0] for i in final if i.keyword == "EXPOSE"}
    if port is None or port not in exposed:
        found.append(f"the served port {port} is not EXPOSEd ({sorted(exposed)})")

    # The health check asks a route the server has, on the port it serves, without a key.
    health = _only(final, "HEALTHCHECK")
    probe = " ".join(health.exec_form() or []) if health is not None else ""
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", probe)
    if url is None:
        found.append("no HEALTHCHECK asking the server over HTTP in exec form")
    else:
        if url[1] != port:
            found.append(f"the HEALTHCHECK asks port {url[1]}, the server listens on {port}")
        if not _health_route_is_served(url[2]):
            found.append(f"the HEALTHCHECK asks {url[2]}, which is not an open route")

    # No secrets, in build args, environment or commands.
    for instruction in instructions:
        if instruction.keyword in ("ENV", "ARG"):
            for word in instruction.words():
                name, equals, value = word.partition("=")
                if equals and value and _SECRET_NAME.search(name):
                    found.append(f"line {instruction.line}: {name} is given a value")
        if _SECRET_VALUE.search(instruction.arguments):
            found.append(f"line {instruction.line}: looks like a secret")

    # What is copied from the build context exists and is not left out by .dockerignore.
    allowed = [
        line[1:].strip().rstrip("/")
        for line in ignore.splitlines()
        if line.startswith("!") and line[1:].strip()
    ]
    patterns = [line.strip() for line in ignore.splitlines() if line.strip()[:1] not in ("", "#")]
    if patterns[:1] != ["*"]:
        found.append(".dockerignore does not start from '*' (send only what is listed)")
    for instruction in instructions:
        if instruction.keyword not in ("COPY", "ADD") or "from" in instruction.flags():
            continue
        if instruction.keyword == "ADD":
            found.append(f"line {instruction.line}: ADD (use COPY: no URLs, no unpacking)")
        sources = [w for w in instruction.words() if not w.startswith("--")][:-1]
        for source in sources:
            if not (root / source).exists():
                found.append(f"line {instruction.line}: COPY {source}: not in the repository")
            if not any(source == a or source.startswith(f"{a}/") for a in allowed):
                found.append(f"line {instruction.line}: COPY {source}: .dockerignore leaves it out")
    return found


def _real() -> tuple[str, str]:
    return DOCKERFILE.read_text(encoding="utf-8"), DOCKERIGNORE.read_text(encoding="utf-8")


def test_the_dockerfile_has_every_property() -> None:
    assert problems(*_real()) == []


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("FROM python:3.11-slim AS builder", "", "1 stage(s)"),
        ("FROM python:3.11-slim\n", "FROM python:3.11\n", "not a slim Python image"),
        ("USER 10001:10001", "USER root", "give a numeric, non-zero uid"),
        ("USER 10001:10001", "USER 0", "give a numeric, non-zero uid"),
        ("USER 10001:10001", "", "it sets no USER"),
        ("USER 10001:10001", "USER 10002", "not the uid KServe's runtime runs as"),
        ('ENTRYPOINT ["inferd", "serve"]', 'ENTRYPOINT ["inferd"]', "ENTRYPOINT is not"),
        ('ENTRYPOINT ["inferd", "serve"]', "ENTRYPOINT inferd serve", "ENTRYPOINT is not"),
        ('"0.0.0.0",', '"0.0.0.0", "--insecure",', "without an API key"),
        ('"--host", "0.0.0.0"', '"--host", "127.0.0.1"', "does not listen on 0.0.0.0"),
        ('CMD ["/models"', 'CMD ["/elsewhere"', "which nothing is copied to"),
        ("EXPOSE 8000", "EXPOSE 9000", "is not EXPOSEd"),
        ('VOLUME ["/var/lib/inferd"]', "", "is not on a VOLUME"),
        ("/v2/health/ready", "/v2/health/readiness", "not an open route"),
        ("/v2/health/ready", "/v2/repository/index", "not an open route"),  # needs the key
        ("127.0.0.1:8000", "127.0.0.1:8080", "asks port 8080"),
        ("PYTHONUNBUFFERED=1", "INFERD_API_KEY=hunter2", "INFERD_API_KEY is given a value"),
        ('ARG EXTRAS=""', 'ARG EXTRAS=""\nARG PIP_INDEX_URL=https://me:pw@pypi.example', "secret"),
        ("COPY src ./src", "COPY src secrets.env ./", "secrets.env: not in the repository"),
        ("COPY src ./src", "ADD src ./src", "ADD (use COPY"),
    ],
)
def test_problems_catches_each_broken_property(old: str, new: str, says: str) -> None:
    text, ignore = _real()
    assert old in text
    found = problems(text.replace(old, new, 1), ignore)
    assert any(says in problem for problem in found), found


def test_problems_catches_what_dockerignore_would_send_or_leave_out() -> None:
    text, ignore = _real()
    found = problems(text, ignore.replace("!model_repository/\n", ""))
    assert any("model_repository: .dockerignore leaves it out" in p for p in found), found
    found = problems(text, ignore.replace("\n*\n", "\n"))
    assert any("does not start from '*'" in p for p in found), found


def test_the_base_image_serves_the_onnx_models_and_drops_those_needing_an_extra() -> None:
    """The base install has onnxruntime; the RUN step's pattern finds exactly the example
    models on torch (which the image removes unless EXTRAS brings torch in)."""
    text, _ = _real()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(dependency.startswith("onnxruntime") for dependency in project["dependencies"])
    assert "torch" in project["optional-dependencies"]
    pattern = re.search(r"grep -Eq '([^']+)'", text)
    assert pattern is not None
    regex = re.compile(pattern[1].replace("[[:space:]]", r"\s"), re.MULTILINE)
    for spec_file in sorted((ROOT / "model_repository").glob("*/model.yaml")):
        text_of = spec_file.read_text(encoding="utf-8")
        backend = (yaml.safe_load(text_of) or {}).get("backend", "onnx")
        assert bool(regex.search(text_of)) == (backend == "torch"), spec_file
        assert backend in ("onnx", "torch"), f"{spec_file}: which extra serves {backend}?"


def test_the_builder_has_what_building_the_wheel_reads() -> None:
    text, _ = _real()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    builder = stages(parse(text))[0]
    copied = {
        source
        for i in builder
        if i.keyword == "COPY"
        for source in [w for w in i.words() if not w.startswith("--")][:-1]
    }
    assert {"pyproject.toml", project["readme"], "src"} <= copied
    install = " ".join(i.arguments for i in builder if i.keyword == "RUN")
    assert "pip wheel" in install and "${EXTRAS:+[$EXTRAS]}" in install
    assert any(i.keyword == "ARG" and i.arguments.startswith("EXTRAS=") for i in builder)


def test_the_parser_joins_continuations_and_reads_exec_forms() -> None:
    parsed = parse(
        "FROM a AS b\n# note\nRUN one \\\n  # inside\n    two\nHEALTHCHECK --interval=5s \\\n"
        '  CMD ["x", "y"]\nCMD run it\n'
    )
    assert [i.keyword for i in parsed] == ["FROM", "RUN", "HEALTHCHECK", "CMD"]
    assert parsed[1].arguments == "one two"
    assert parsed[2].exec_form() == ["x", "y"] and parsed[2].flags() == {"interval": "5s"}
    assert parsed[3].exec_form() is None
    assert len(stages(parsed)) == 1
