"""The pods of deploy/kubernetes/base, run on this machine as the manifests describe them,
without Kubernetes: each Secret laid out as the kubelet does (the items behind a ``..data``
link, files root:10001 mode 0440, read-only directories), the CA pod's init container
script, then ``ca-service serve``, ``ca-gateway serve`` and ``ca-portal serve`` with each
container's own environment (ConfigMap, env, the Secret's values), as user 10001 when the
suite runs as root and the project's Python works for that user, else as root without any
capability (``setpriv``: like the containers' ``drop: [ALL]``, so read-only directories
stay read-only) — on PostgreSQL (the portal on a database of its own) and a throw-away
Redis, with the test card CA's CRL server standing for the card CA's. Then every probe the
manifests declare: the CA's exec probes, the gateway's HTTPS GETs and the portal's HTTP
GETs; the portal's pages through the gateway's route; what the portal's probes say while
its database refuses connections; and what the probes say when the CA goes."""

from __future__ import annotations

import functools
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.k8s.support import (
    Bootstrap,
    Object,
    containers,
    environment,
    make_bootstrap,
    named,
    pod_spec,
    rendered,
)
from tests.support import BIN, free_port, start_listening

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

_CA_LISTENING = re.compile(r"listening on (\S+):(\d+); HTTP \(CRL, OCSP\) on (\S+):(\d+)")
_GATEWAY_LISTENING = re.compile(r"listening on https://([\d.]+):(\d+)/")
_PORTAL_LISTENING = re.compile(r"ca-portal: listening on http://([\d.]+):(\d+)/")
_CARD_CRL_LISTENING = re.compile(r"ca-test-card-ca: listening on http://([\d.]+):(\d+)/")
# What the image sets (deploy/container/Containerfile); a container starts with nothing else.
_IMAGE_ENV = {
    "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}
# A suite run against a checkout other than the one installed (a worktree) names it here;
# the processes must run that code too.
if os.environ.get("PYTHONPATH"):
    _IMAGE_ENV["PYTHONPATH"] = os.environ["PYTHONPATH"]


@functools.cache
def _identity(uid: int, gid: int) -> str:
    """How the pods' processes run here: "user" (as ``uid``), "no-capabilities" (root
    without capabilities) or "self" (as the suite, not root)."""
    if os.geteuid() != 0:
        return "self"
    same = subprocess.run(
        [str(BIN / "python"), "-c", "import sys, ca_service.app, gateway.cli; print(sys.version)"],
        user=uid,
        group=gid,
        capture_output=True,
        text=True,
        check=False,
    )
    # The interpreter may live where only root may look (a pyenv in /root) and then run
    # with another Python's standard library: not good enough.
    if same.returncode == 0 and same.stdout.strip() == sys.version:
        return "user"
    assert shutil.which("setpriv"), "neither user 10001 nor setpriv (util-linux) can run the pods"
    return "no-capabilities"


class Pod:
    """One Deployment's pod on this machine: its volumes under ``root``, its processes as
    the pod's user where the suite may switch to it."""

    def __init__(
        self, deployment: Object, tree: list[Object], bootstrap: Bootstrap, root: Path
    ) -> None:
        self.deployment = deployment
        self.tree = tree
        self.bootstrap = bootstrap
        self.spec = pod_spec(deployment)
        context = self.spec["securityContext"]
        self.uid, self.gid = context["runAsUser"], context["fsGroup"]
        self.identity = _identity(self.uid, self.gid)
        # Who owns what the pod's processes write.
        self.owner = self.uid if self.identity == "user" else os.geteuid()
        self.volumes: dict[str, Path] = {}
        for volume in self.spec["volumes"]:
            path = root / volume["name"]
            if "secret" in volume:
                self._secret_volume(path, volume["secret"])
            elif "persistentVolumeClaim" in volume:
                # A volume the kubelet made group fsGroup (fsGroupChangePolicy), as the
                # portal's shared files volume is.
                path.mkdir()
                self._own(path, 0o2770)
            else:
                assert "emptyDir" in volume
                path.mkdir()
                self._own(path, 0o2777)
            self.volumes[volume["name"]] = path

    def _own(self, path: Path, mode: int) -> None:
        if os.geteuid() == 0:
            os.chown(path, 0, self.gid, follow_symlinks=False)
        path.chmod(mode)

    def _secret_volume(self, directory: Path, secret: Mapping[str, Any]) -> None:
        """As the kubelet's atomic writer lays out a Secret volume, read-only."""
        data = self.bootstrap.secrets[secret["secretName"]]
        stamp = directory / "..2026_01_01_00_00_00.000000001"
        for item in secret["items"]:
            path = stamp / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[item["key"]])
            self._own(path, secret["defaultMode"])
        (directory / "..data").symlink_to(stamp.name)
        for top in {item["path"].split("/", 1)[0] for item in secret["items"]}:
            (directory / top).symlink_to(f"..data/{top}")
        for folder in sorted(
            {p for p in directory.rglob("*") if p.is_dir() and not p.is_symlink()}
        ):
            self._own(folder, 0o555)
        self._own(stamp, 0o555)
        self._own(directory, 0o555)

    def mounts(self, container: Object) -> dict[str, Path]:
        return {m["mountPath"]: self.volumes[m["name"]] for m in container["volumeMounts"]}

    def localise(self, text: str, container: Object) -> str:
        """``text`` with the container's mount paths turned into this machine's."""
        mounts = self.mounts(container)
        # One pass, longest first: a local path may itself hold a mount path (/tmp).
        pattern = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
        return re.sub(
            rf"(?<![\w/.-])({pattern})(?=/|\b|$)", lambda m: str(mounts[m.group(1)]), text
        )

    def env(self, container: Object, addresses: Mapping[str, str]) -> dict[str, str]:
        """The container's environment here: its mount paths and the cluster's addresses
        (``addresses``: what is in the manifests -> where it is on this machine)."""
        env = dict(_IMAGE_ENV)
        for name, value in environment(container, self.tree, self.bootstrap.secrets).items():
            value = self.localise(value, container)
            for cluster, local in addresses.items():
                value = value.replace(cluster, local)
            env[name] = value
        return env

    def popen(self, command: list[str]) -> tuple[list[str], dict[str, Any]]:
        """``command`` and the arguments of Popen that run it as the pod's user would."""
        if self.identity == "user":
            return command, {"user": self.uid, "group": self.gid, "extra_groups": [self.gid]}
        if self.identity == "no-capabilities":
            drop = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]
            return [*drop, *command], {}
        return command, {}

    def run(
        self, command: list[str], env: Mapping[str, str], *, cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        command, as_user = self.popen(command)
        return subprocess.run(
            command,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            **as_user,
        )


@pytest.fixture
def machine_root() -> Iterator[Path]:
    """A directory user 10001 can reach (pytest's own is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="k8s-pods-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _https_get(port: int, path: str) -> int:
    """What the kubelet's HTTPS probe does: no certificate check, no client certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}{path}", context=context, timeout=3
        ) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _http_get(port: int, path: str) -> int:
    """The kubelet's plain HTTP probe."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _database_open(server: str, name: str, open_: bool) -> None:
    """Lets ``name`` take connections, or refuses them and ends those it has: an outage
    of the portal's database alone."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(open_).lower()}")
        if not open_:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


@pytest.fixture
def portal_database(postgres_server: str) -> Iterator[str]:
    """A database of the portal's own on the test server (make-secrets.py refuses the
    CA's), dropped afterwards."""
    import psycopg

    name = f"portal_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield urlunsplit(urlsplit(postgres_server)._replace(path="/" + name))
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _until(condition: Any, timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not in time"
        time.sleep(0.2)
    return time.monotonic() - started


def _probes(container: Object) -> dict[str, Object]:
    return {kind: container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}


def test_the_pods_start_and_answer_their_probes_as_the_manifests_say(
    postgres_server: str,
    postgres_url: str,
    portal_database: str,
    redis_url: str,
    machine_root: Path,
    tmp_path: Path,
) -> None:
    bootstrap = make_bootstrap(
        tmp_path,
        database_url=postgres_url,
        ca_redis_url=redis_url,
        gateway_redis_url=redis_url.rsplit("/", 1)[0] + "/1",
        portal_database_url=portal_database,
    )
    tree = rendered("base")

    # -- the CA pod: the init container, then the server -----------------------------------
    ca_deployment = named(tree, "Deployment", "ca-service")
    ca_pod = Pod(ca_deployment, tree, bootstrap, machine_root / "ca")
    init, ca = containers(ca_deployment)
    assert init["command"][:2] == ["/bin/sh", "-c"]
    script = ca_pod.localise(init["command"][2], init)
    done = ca_pod.run(["/bin/sh", "-c", script], dict(_IMAGE_ENV), cwd=machine_root)
    assert done.returncode == 0, done.stderr
    data = ca_pod.volumes["data"]
    laid_out = {str(p.relative_to(data)): p for p in data.rglob("*") if p.is_file()}
    assert set(laid_out) == {
        item["path"]
        for volume in ca_pod.spec["volumes"]
        if volume["name"] == "keys"
        for item in volume["secret"]["items"]
    }
    for relative, path in laid_out.items():
        assert path.read_bytes() == (bootstrap.data_dir / relative).read_bytes(), relative
        assert stat.S_IMODE(path.stat().st_mode) == 0o400, relative
        # (The emptyDir's set-group-ID bit, from fsGroup, is inherited.)
        assert (stat.S_IMODE(path.parent.stat().st_mode) & 0o777) == 0o700, relative
        assert path.stat().st_uid == ca_pod.owner, relative

    grpc_port, http_port = free_port(), free_port()
    ca_env = ca_pod.env(ca, {})
    ca_env |= {
        # Loopback ports of this machine instead of the pod's 0.0.0.0:50051/8080; the
        # healthcheck's wildcard-to-loopback is tested on its own.
        "CA_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "CA_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
        "CA_SMTP_HOST": "127.0.0.1",
    }
    assert ca["command"] == ["ca-service", "serve"]
    command, as_user = ca_pod.popen([str(BIN / "ca-service"), "serve"])
    ca_process, _ = start_listening(
        command,
        ca_env,
        tmp_path / "ca.log",
        _CA_LISTENING,
        timeout=60,
        cwd=ca_pod.volumes["tmp"],
        **as_user,
    )
    gateway_process = portal_process = card_crl = None
    try:
        for kind, probe in _probes(ca).items():
            command = probe["exec"]["command"]
            answer = ca_pod.run(
                [str(BIN / command[0]), *[ca_pod.localise(a, ca) for a in command[1:]]],
                ca_env,
                cwd=ca_pod.volumes["tmp"],
            )
            assert answer.returncode == 0, (kind, answer.stderr)
            assert answer.stdout.strip() == f"127.0.0.1:{grpc_port}: SERVING", kind
        # The CA wrote its OCSP responder key into its own data directory.
        responder_key = data / "ocsp" / "key.pem"
        assert responder_key.stat().st_uid == ca_pod.owner

        # -- the portal pod ----------------------------------------------------------------
        portal_deployment = named(tree, "Deployment", "ca-portal")
        portal_pod = Pod(portal_deployment, tree, bootstrap, machine_root / "portal")
        (portal,) = containers(portal_deployment)
        portal_port = free_port()
        portal_env = portal_pod.env(portal, {"ca-service:50051": f"127.0.0.1:{grpc_port}"})
        portal_env["PORTAL_LISTEN"] = f"127.0.0.1:{portal_port}"
        assert portal["command"] == ["ca-portal", "serve"]
        command, as_user = portal_pod.popen([str(BIN / "ca-portal"), "serve"])
        portal_process, _ = start_listening(
            command,
            portal_env,
            tmp_path / "portal.log",
            _PORTAL_LISTENING,
            timeout=60,
            cwd=portal_pod.volumes["tmp"],
            **as_user,
        )
        portal_probes = _probes(portal)
        for probe in portal_probes.values():
            assert (probe["httpGet"]["port"], probe["httpGet"]["scheme"]) == ("http", "HTTP")
            path = probe["httpGet"]["path"]
            _until(lambda path=path: _http_get(portal_port, path) == 200, 10)

        # -- the gateway pod, with the test card CA's CRL server ---------------------------
        card_crl, crl_at = start_listening(
            [str(BIN / "ca-test-card-ca"), "serve", str(bootstrap.card_ca)],
            {**_IMAGE_ENV, "HOME": str(tmp_path)},
            tmp_path / "card-crl.log",
            _CARD_CRL_LISTENING,
        )
        gateway_deployment = named(tree, "Deployment", "ca-gateway")
        gateway_pod = Pod(gateway_deployment, tree, bootstrap, machine_root / "gateway")
        (gateway,) = containers(gateway_deployment)
        https_port = free_port()
        gateway_env = gateway_pod.env(
            gateway,
            {
                "ca-service:50051": f"127.0.0.1:{grpc_port}",
                "ca-service:8080": f"127.0.0.1:{http_port}",
                "portal:8081": f"127.0.0.1:{free_port()}",
                "ca-portal:8090": f"127.0.0.1:{portal_port}",
                "http://crl.card-ca.example.jp/card.crl": f"http://127.0.0.1:{crl_at[2]}/crl",
            },
        )
        gateway_env["GATEWAY_LISTEN"] = f"127.0.0.1:{https_port}"
        # As the manifests say: the CA's certificate checked for "localhost".
        assert gateway_env["GATEWAY_CA_SERVER_NAME"] == "localhost"
        assert gateway["command"] == ["ca-gateway", "serve"]
        command, as_user = gateway_pod.popen([str(BIN / "ca-gateway"), "serve"])
        gateway_process, _ = start_listening(
            command,
            gateway_env,
            tmp_path / "gateway.log",
            _GATEWAY_LISTENING,
            timeout=60,
            cwd=gateway_pod.volumes["tmp"],
            **as_user,
        )
        probes = _probes(gateway)
        for probe in probes.values():
            assert probe["httpGet"]["port"] == "https"
            path = probe["httpGet"]["path"]
            _until(lambda path=path: _https_get(https_port, path) == 200, 10)

        # -- the portal's pages through the gateway's route --------------------------------
        mount = portal_env["PORTAL_MOUNT"]
        assert _https_get(https_port, mount) == 200
        assert _https_get(https_port, mount + "static/portal.css") == 200
        # The card pages: the gateway refuses a caller without a card certificate.
        assert _https_get(https_port, mount + "card/") in (401, 403)

        # -- the portal's database refuses connections: unready, alive, then ready again ----
        readiness = portal_probes["readinessProbe"]["httpGet"]["path"]
        liveness = portal_probes["livenessProbe"]["httpGet"]["path"]
        database = urlsplit(portal_database).path.lstrip("/")
        _database_open(postgres_server, database, False)
        try:
            took = _until(lambda: _http_get(portal_port, readiness) == 503, 15)
            assert _http_get(portal_port, liveness) == 200
        finally:
            _database_open(postgres_server, database, True)
        back = _until(lambda: _http_get(portal_port, readiness) == 200, 15)
        print(f"portal not ready {took:.1f} s after its database refused, ready {back:.1f} s after")

        # -- the CA goes: its probe fails; the gateway stays alive but is no longer ready --
        ca_process.terminate()
        ca_process.wait(20)
        readiness = probes["readinessProbe"]["httpGet"]["path"]
        liveness = probes["livenessProbe"]["httpGet"]["path"]
        staleness = float(gateway_env["GATEWAY_MAX_STALENESS"])
        took = _until(lambda: _https_get(https_port, readiness) == 503, staleness + 10)
        print(f"pods ran as {ca_pod.identity!r}; gateway not ready {took:.1f} s after the CA went")
        assert _https_get(https_port, liveness) == 200
        # The portal stays ready without the CA (its pages say to try later).
        assert _http_get(portal_port, portal_probes["readinessProbe"]["httpGet"]["path"]) == 200
        command = ca["readinessProbe"]["exec"]["command"]
        down = ca_pod.run(
            [str(BIN / command[0]), *[ca_pod.localise(a, ca) for a in command[1:]]],
            ca_env,
            cwd=ca_pod.volumes["tmp"],
        )
        assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
    finally:
        for process in (ca_process, gateway_process, portal_process, card_crl):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
