"""Reading deploy/kubernetes: the rendered trees, the Secrets make-secrets.py makes from a
real data directory, and the questions the tests ask of them (which pods a selector picks,
what a container's environment is, what a NetworkPolicy lets through)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s.kustomize import render
from tests.support import ca_env, run, tool

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
MAKE_SECRETS = KUBERNETES / "make-secrets.py"
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
TREES = ("base", "overlays/example")

Object = dict[str, Any]


def rendered(tree: str) -> list[Object]:
    return render(KUBERNETES / tree)


def of_kind(objects: list[Object], kind: str) -> list[Object]:
    return [item for item in objects if item["kind"] == kind]


def named(objects: list[Object], kind: str, name: str) -> Object:
    found = [item for item in of_kind(objects, kind) if item["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels, or the plain map of a Service) against labels."""
    wanted = selector.get("matchLabels", selector) if "matchExpressions" not in selector else None
    assert wanted is not None, "matchExpressions are not used here"
    return bool(wanted) and all(labels.get(key) == value for key, value in wanted.items())


def pod_spec(deployment: Object) -> Object:
    spec: Object = deployment["spec"]["template"]["spec"]
    return spec


def pod_labels(deployment: Object) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(deployment: Object, *, init: bool = True) -> list[Object]:
    spec = pod_spec(deployment)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def container_ports(deployment: Object) -> dict[str, int]:
    """Name (and the number as text) -> number, over every container of the pod."""
    ports: dict[str, int] = {}
    for container in containers(deployment):
        for port in container.get("ports", []):
            ports[str(port["containerPort"])] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


def resolve_port(deployment: Object, port: int | str) -> int:
    ports = container_ports(deployment)
    assert str(port) in ports, f"port {port} is no port of {deployment['metadata']['name']}"
    return ports[str(port)]


# -- the Secrets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bootstrap:
    """A CA made as deploy/README.md says, and the Secrets make-secrets.py makes of it."""

    data_dir: Path
    values: Path
    secrets: dict[str, dict[str, bytes]]
    # The test identity card CA's directory (its key, for issuing cards and serving its CRL).
    card_ca: Path


def make_secrets(
    data_dir: Path, values: Path, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """deploy/kubernetes/make-secrets.py, as the operator runs it."""
    arguments = ["--data-dir", str(data_dir), "--values", str(values)]
    return run([sys.executable, str(MAKE_SECRETS), *arguments], check=check)


def make_bootstrap(
    directory: Path,
    *,
    database_url: str,
    ca_redis_url: str,
    gateway_redis_url: str,
    portal_database_url: str,
) -> Bootstrap:
    data_dir = directory / "ca-data"
    env = ca_env(data_dir)
    run([tool("ca-service"), "init"], env)
    run([tool("ca-service"), "credential", "--name", "probe", "--role", "service"], env)
    run([tool("ca-service"), "credential", "--name", "portal", "--role", "portal"], env)
    gateway = ["--name", "gateway", "--dns", "localhost", "--ip", "127.0.0.1"]
    run([tool("ca-service"), "server-cert", *gateway], env)
    # The identity card CA: the test one (ca_service/devtools/card_ca.py) stands for JPKI.
    card_ca = directory / "card-ca"
    run([tool("ca-test-card-ca"), "init", str(card_ca)])
    values = directory / "values"
    values.mkdir()
    for name, value in {
        "key-passphrase": env["CA_KEY_PASSPHRASE"] + "\n",
        "smtp-password": "",
        "database-url": database_url + "\n",
        "ca-redis-url": ca_redis_url + "\n",
        "gateway-redis-url": gateway_redis_url + "\n",
        "portal-database-url": portal_database_url + "\n",
        "card-trust.pem": (card_ca / "ca.pem").read_text(),
    }.items():
        (values / name).write_text(value)
    return Bootstrap(data_dir, values, read_secrets(data_dir, values), card_ca)


def read_secrets(data_dir: Path, values: Path) -> dict[str, dict[str, bytes]]:
    """make-secrets.py's Secrets: name -> key -> decoded value."""
    listing = json.loads(make_secrets(data_dir, values).stdout)
    assert listing["kind"] == "List"
    return {
        item["metadata"]["name"]: {
            key: base64.b64decode(value) for key, value in item.get("data", {}).items()
        }
        for item in listing["items"]
    }


def secret_objects(bootstrap: Bootstrap) -> list[Object]:
    listing = json.loads(make_secrets(bootstrap.data_dir, bootstrap.values).stdout)
    items: list[Object] = listing["items"]
    return items


# -- environment -----------------------------------------------------------------------------


def config_maps(objects: list[Object]) -> dict[str, dict[str, str]]:
    return {
        item["metadata"]["name"]: item.get("data", {}) for item in of_kind(objects, "ConfigMap")
    }


def environment(
    container: Object, objects: list[Object], secrets: Mapping[str, Mapping[str, bytes]]
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, env over it."""
    maps = config_maps(objects)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, source
        env.update(maps[source["configMapRef"]["name"]])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
            continue
        reference = variable["valueFrom"]
        if "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            env[variable["name"]] = secrets[ref["name"]][ref["key"]].decode()
        else:
            ref = reference["configMapKeyRef"]
            env[variable["name"]] = maps[ref["name"]][ref["key"]]
    return env


def variable_names(container: Object, objects: list[Object]) -> Iterator[str]:
    maps = config_maps(objects)
    for source in container.get("envFrom", []):
        yield from maps[source["configMapRef"]["name"]]
    for variable in container.get("env", []):
        yield variable["name"]


# -- NetworkPolicy -------------------------------------------------------------------------


def _ports_allow(rule: Object, deployment: Object | None, port: int) -> bool:
    if "ports" not in rule:
        return True
    for allowed in rule["ports"]:
        number = allowed.get("port")
        if number is None:
            return True
        if isinstance(number, str):
            if deployment is None or container_ports(deployment).get(number) != port:
                continue
            return True
        if number == port:
            return True
    return False


def _peer_allows(peer: Object, labels: Mapping[str, str] | None) -> bool:
    """Whether ``peer`` admits a pod with ``labels`` in the same namespace; None: a server
    this tree does not run (PostgreSQL, Redis, SMTP, the portal, a card CRL), which any peer
    may be."""
    if labels is None:
        return True
    if "namespaceSelector" in peer or "ipBlock" in peer:
        return False
    return matches(peer["podSelector"], labels) if peer.get("podSelector") else True


def allows(
    policy: Object,
    direction: str,
    port: int,
    *,
    target: Object,
    peer_labels: Mapping[str, str] | None,
    peer_anywhere: bool = False,
) -> bool:
    """Whether ``policy`` (which selects ``target``'s pods) lets a connection on ``port``
    through in ``direction`` ("ingress": from a peer to the target's port; "egress": from
    the target to a peer's port). ``peer_anywhere``: the peer may be anything, so only a
    rule without a peer list counts."""
    key, peers = ("ingress", "from") if direction == "ingress" else ("egress", "to")
    for rule in policy["spec"].get(key, []):
        port_owner = target if direction == "ingress" else None
        if not _ports_allow(rule, port_owner, port):
            continue
        if peers not in rule:
            return True
        if peer_anywhere:
            continue
        if any(_peer_allows(peer, peer_labels) for peer in rule[peers]):
            return True
    return False
