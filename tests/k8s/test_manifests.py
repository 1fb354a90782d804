"""deploy/kubernetes, checked offline: every object (the base, the example overlay and the
Secrets make-secrets.py makes) against the Kubernetes JSON schemas of pinned versions
(kubernetes-validate, strict: an unknown field fails), every setting named against the
programs' settings tables, every reference against what is defined, every selector and
NetworkPolicy against the pods it is meant for, and the pods against the "restricted"
Pod Security Standard."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from ca_service.adapters.grpc.auth import caller_from_pem
from ca_service.config import SETTINGS as CA_SETTINGS
from ca_service.domain.profiles import Role
from ca_service.shared.redis_url import is_sentinel_url, parse_sentinel_url
from gateway.config import SETTINGS as GATEWAY_SETTINGS
from gateway.portal.app import HEALTH_PATH as PORTAL_HEALTH_PATH
from gateway.portal.app import STATIC_FILES as PORTAL_STATIC_FILES
from gateway.portal.config import SETTINGS as PORTAL_SETTINGS
from gateway.routes import Mode, parse_routes
from gateway.web.pages import static_file
from tests.k8s.support import (
    KUBERNETES,
    ROOT,
    TREES,
    Bootstrap,
    Object,
    allows,
    config_maps,
    container_ports,
    containers,
    environment,
    make_bootstrap,
    make_secrets,
    matches,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    read_secrets,
    rendered,
    resolve_port,
    secret_objects,
    variable_names,
)
from tests.support import run, tool
from tests.test_deploy import SCRIPTS, known_variables

# The oldest Kubernetes these manifests are meant for, and the newest whose schemas the
# pinned kubernetes-validate (pyproject.toml) ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# Variables that are no setting of either table but that the programs read.
CA_EXTRA = {"CA_CONFIG_FILE", "CA_ADMIN_CREDENTIALS"}
SECRET_SETTINGS = {s.env for s in (*CA_SETTINGS, *GATEWAY_SETTINGS, *PORTAL_SETTINGS) if s.secret}
CA_LABELS = {"app.kubernetes.io/name": "ca-service", "app.kubernetes.io/part-of": "private-ca"}
GATEWAY_LABELS = {"app.kubernetes.io/name": "ca-gateway", "app.kubernetes.io/part-of": "private-ca"}
PORTAL_LABELS = {"app.kubernetes.io/name": "ca-portal", "app.kubernetes.io/part-of": "private-ca"}
PORTAL_DATABASE_URL = "postgresql://portal:s3cret@portal-db.example.jp:5432/portal"


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Bootstrap:
    return make_bootstrap(
        tmp_path_factory.mktemp("bootstrap"),
        database_url="postgresql://ca:s3cret@db.example.jp:5432/ca",
        ca_redis_url="redis://:s3cret@redis.example.jp:6379/0",
        gateway_redis_url="redis://:s3cret@redis.example.jp:6379/1",
        portal_database_url=PORTAL_DATABASE_URL,
    )


@pytest.fixture(scope="module")
def sentinel_bootstrap(bootstrap: Bootstrap, tmp_path_factory: pytest.TempPathFactory) -> Bootstrap:
    """The same, with Redis behind Sentinel (three sentinels, the CA and the gateway on
    databases 0 and 1)."""
    values = tmp_path_factory.mktemp("sentinel-values")
    for path in bootstrap.values.iterdir():
        (values / path.name).write_bytes(path.read_bytes())
    sentinels = ",".join(f"redis-node-{n}.redis-headless.redis:26379" for n in range(3))
    for name, db in (("ca-redis-url", 0), ("gateway-redis-url", 1)):
        url = f"redis+sentinel://:s3cret@{sentinels}/mymaster/{db}?sentinel_password=s3cret"
        (values / name).write_text(url + "\n")
    return Bootstrap(
        bootstrap.data_dir, values, read_secrets(bootstrap.data_dir, values), bootstrap.card_ca
    )


def _redis_ports(url: str) -> set[int]:
    """The ports a Redis URL has a program connect to: the server's or, with Sentinel, each
    sentinel's and then the primary's, which the sentinels name (6379 in these manifests)."""
    if is_sentinel_url(url):
        return {port for _, port in parse_sentinel_url(url).sentinels} | {6379}
    return {urlsplit(url).port or 6379}


@pytest.fixture(scope="module", params=TREES)
def tree(request: pytest.FixtureRequest) -> list[Object]:
    return rendered(request.param)


def _deployment(objects: list[Object], name: str) -> Object:
    return named(objects, "Deployment", name)


def _main(deployment: Object) -> Object:
    main: Object = pod_spec(deployment)["containers"][0]
    return main


# -- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_kubernetes(
    tree: list[Object], bootstrap: Bootstrap, version: str
) -> None:
    for item in [*tree, *secret_objects(bootstrap)]:
        kubernetes_validate.validate(item, version, strict=True)


def test_the_schema_check_refuses_a_misspelt_field(tree: list[Object]) -> None:
    deployment = _deployment(tree, "ca-service")
    _main(deployment)["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_base_lists_every_manifest_beside_it() -> None:
    import yaml

    kustomization = yaml.safe_load((KUBERNETES / "base" / "kustomization.yaml").read_text())
    files = {p.name for p in (KUBERNETES / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


# -- settings --------------------------------------------------------------------------------


def test_containers_name_only_settings_their_program_knows(tree: list[Object]) -> None:
    tables = {
        "ca-service": known_variables(CA_SETTINGS) | CA_EXTRA,
        "ca-gateway": known_variables(GATEWAY_SETTINGS),
        "ca-portal": known_variables(PORTAL_SETTINGS),
    }
    for deployment in of_kind(tree, "Deployment"):
        for container in containers(deployment, init=False):
            program = container["command"][0]
            assert program in SCRIPTS, program
            names = list(variable_names(container, tree))
            assert names, container["name"]
            assert len(names) == len(set(names)), f"set twice: {sorted(names)}"
            unknown = set(names) - tables[program]
            assert not unknown, f"{program}: {sorted(unknown)}"
            # Secrets only as files: no passphrase or password as a value.
            assert not set(names) & SECRET_SETTINGS, sorted(set(names) & SECRET_SETTINGS)


def test_the_ca_reads_its_database_and_redis_from_the_secret_config_file(
    tree: list[Object], bootstrap: Bootstrap
) -> None:
    container = _main(_deployment(tree, "ca-service"))
    env = environment(container, tree, bootstrap.secrets)
    config = tomllib.loads(bootstrap.secrets["ca-service-secrets"]["config.toml"].decode())
    assert config == {
        "database_url": "postgresql://ca:s3cret@db.example.jp:5432/ca",
        "redis_url": "redis://:s3cret@redis.example.jp:6379/0",
    }
    assert set(config) <= {s.name for s in CA_SETTINGS}
    # An environment variable would win over the file.
    assert not {"CA_DATABASE_URL", "CA_REDIS_URL"} & set(env)


def _secret_file(deployment: Object, env: dict[str, str], name: str) -> tuple[str, str]:
    """(Secret, key) behind the file the variable ``name`` names."""
    container = _main(deployment)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    directory, file_name = env[name].rsplit("/", 1)
    volume = volumes[mounts[directory]]
    assert "secret" in volume, name
    paths = {item["path"]: item["key"] for item in volume["secret"]["items"]}
    assert file_name in paths, name
    return volume["secret"]["secretName"], paths[file_name]


@pytest.mark.parametrize("program", ["ca-service", "ca-gateway", "ca-portal"])
def test_every_file_setting_points_into_a_mounted_secret(
    tree: list[Object], bootstrap: Bootstrap, program: str
) -> None:
    deployment = _deployment(tree, program)
    env = environment(_main(deployment), tree, bootstrap.secrets)
    files = [n for n in env if n.endswith("_FILE")]
    assert files
    for name in files:
        secret, key = _secret_file(deployment, env, name)
        assert key in bootstrap.secrets[secret], name


# Settings that name a directory or a file other than through _FILE: what must be there.
_CREDENTIAL = {"cert.pem", "key.pem", "ca.pem"}
_PATHS: dict[str, dict[str, set[str] | str | None]] = {
    "ca-gateway": {"GATEWAY_CA_CREDENTIAL_DIR": _CREDENTIAL, "GATEWAY_CARD_TRUST": None},
    "ca-portal": {"PORTAL_CA_CREDENTIAL_DIR": _CREDENTIAL, "PORTAL_STORAGE_DIR": "writable"},
}


@pytest.mark.parametrize("program", sorted(_PATHS))
def test_every_path_setting_points_at_what_is_mounted_there(
    tree: list[Object], bootstrap: Bootstrap, program: str
) -> None:
    deployment = _deployment(tree, program)
    env = environment(_main(deployment), tree, bootstrap.secrets)
    mounts = {m["mountPath"]: m for m in _main(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    for name, wanted in _PATHS[program].items():
        if wanted is None:  # a file in a Secret
            secret, key = _secret_file(deployment, env, name)
            assert key in bootstrap.secrets[secret], name
            continue
        mount = mounts[env[name]]
        volume = volumes[mount["name"]]
        if wanted == "writable":
            # Shared by every pod: a claim, not an emptyDir of the pod's own.
            assert not mount.get("readOnly"), name
            claim = named(
                tree, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]
            )
            assert "ReadWriteMany" in claim["spec"]["accessModes"], name
        else:
            paths = {item["path"] for item in volume["secret"]["items"]}
            assert paths == wanted, name
            assert set(bootstrap.secrets[volume["secret"]["secretName"]]) >= wanted, name


def test_make_secrets_refuses_sqlite_and_names_a_missing_credential(
    bootstrap: Bootstrap, tmp_path: Path
) -> None:
    values = tmp_path / "values"
    values.mkdir()
    for source in bootstrap.values.iterdir():
        (values / source.name).write_bytes(source.read_bytes())
    (values / "database-url").write_text("sqlite:////var/lib/ca/ca.db\n")
    refused = make_secrets(bootstrap.data_dir, values, check=False)
    assert refused.returncode == 1 and not refused.stdout
    assert "database-url must be a postgresql:// URL" in refused.stderr

    (values / "database-url").write_text("postgresql://ca@db/ca\n")
    # The portal: PostgreSQL too, and never the CA's database (another user is no other
    # database).
    for url, said in (
        ("sqlite:////var/lib/ca-portal/portal.db", "portal-database-url must be a postgresql"),
        ("postgresql://portal:x@db:5432/ca", "portal-database-url names the CA's database"),
    ):
        (values / "portal-database-url").write_text(url + "\n")
        refused = make_secrets(bootstrap.data_dir, values, check=False)
        assert refused.returncode == 1 and said in refused.stderr, refused.stderr
    (values / "portal-database-url").write_text("postgresql://portal:x@db:5432/portal\n")
    (values / "card-trust.pem").write_text("not a certificate\n")
    refused = make_secrets(bootstrap.data_dir, values, check=False)
    assert refused.returncode == 1 and "card-trust.pem holds no PEM" in refused.stderr
    (values / "card-trust.pem").write_bytes((bootstrap.values / "card-trust.pem").read_bytes())
    assert make_secrets(bootstrap.data_dir, values, check=False).returncode == 0
    data_dir = tmp_path / "data"
    for part in ("root", "issuing", "services", "grpc", "secrets", "tls", "credentials"):
        for source in (bootstrap.data_dir / part).rglob("*"):
            if source.is_file() and "probe" not in source.parts:
                target = data_dir / source.relative_to(bootstrap.data_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read_bytes())
    missing = make_secrets(data_dir, values, check=False)
    assert missing.returncode == 1
    assert "ca-service credential --name probe --role service" in missing.stderr
    # The portal's credential likewise.
    for source in (bootstrap.data_dir / "credentials" / "probe").iterdir():
        target = data_dir / "credentials" / "probe" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    for source in (data_dir / "credentials" / "portal").iterdir():
        source.unlink()
    missing = make_secrets(data_dir, values, check=False)
    assert missing.returncode == 1
    assert "ca-service credential --name portal --role portal" in missing.stderr


def test_the_portal_gets_its_credential_of_role_portal_and_its_own_database(
    bootstrap: Bootstrap,
) -> None:
    secrets = bootstrap.secrets
    # As the CA reads the caller's certificate.
    caller = caller_from_pem(secrets["ca-portal-credential"]["cert.pem"])
    assert caller is not None and caller.role is Role.PORTAL
    # The CA's trust: the services CA, which signed the CA's gRPC certificate.
    assert (
        secrets["ca-portal-credential"]["ca.pem"] == secrets["ca-service-keys"]["services-ca.pem"]
    )
    assert secrets["ca-portal-secrets"]["database-url"].decode() == PORTAL_DATABASE_URL
    card = secrets["ca-gateway-card"]["card-trust.pem"]
    assert card == (bootstrap.card_ca / "ca.pem").read_bytes()


def test_the_root_and_services_ca_keys_stay_out_of_the_secrets(bootstrap: Bootstrap) -> None:
    everything = [value for keys in bootstrap.secrets.values() for value in keys.values()]
    for offline in ("root/key.pem", "services/key.pem", "credentials/operator/key.pem"):
        assert (bootstrap.data_dir / offline).read_bytes() not in everything, offline


# -- references ------------------------------------------------------------------------------


def test_every_referenced_secret_and_config_map_key_is_defined_and_every_key_used(
    tree: list[Object], bootstrap: Bootstrap
) -> None:
    maps = config_maps(tree)
    used: set[tuple[str, str]] = set()
    for deployment in of_kind(tree, "Deployment"):
        spec = pod_spec(deployment)
        for volume in spec["volumes"]:
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                assert name in bootstrap.secrets, name
                for item in volume["secret"]["items"]:
                    assert item["key"] in bootstrap.secrets[name], (name, item["key"])
                    used.add((name, item["key"]))
            elif "configMap" in volume:
                assert volume["configMap"]["name"] in maps
            elif "persistentVolumeClaim" in volume:
                named(tree, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        for container in containers(deployment):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in maps
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in bootstrap.secrets[ref["name"]], ref
                    used.add((ref["name"], ref["key"]))
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounted <= {v["name"] for v in spec["volumes"]}, container["name"]
        # No volume left unmounted.
        mounted_anywhere = {
            m["name"] for c in containers(deployment) for m in c.get("volumeMounts", [])
        }
        assert {v["name"] for v in spec["volumes"]} == mounted_anywhere
    defined = {(name, key) for name, keys in bootstrap.secrets.items() for key in keys}
    assert used == defined, f"defined, never used: {sorted(defined - used)}"


def _serves(program: str, env: dict[str, str], path: str) -> bool:
    """Whether ``program`` answers ``path`` without a client certificate or a session, of
    the paths a probe may ask: its health check and its static files."""
    if program == "ca-gateway":
        if path.startswith("/-/static/"):
            return static_file(path.removeprefix("/-/static/")) is not None
        return path == "/-/health"
    assert program == "ca-portal", program
    static = {f"{env['PORTAL_MOUNT']}static/{name}" for name in PORTAL_STATIC_FILES}
    return path == PORTAL_HEALTH_PATH or path in static


# What each program's HTTP probes speak: the gateway TLS on its one port, the portal plain
# HTTP (the gateway in front of it terminates TLS).
_PROBE_SCHEMES = {"ca-gateway": "HTTPS", "ca-portal": "HTTP"}


def test_probes_ask_what_their_program_serves_on_a_port_of_their_container(
    tree: list[Object], bootstrap: Bootstrap
) -> None:
    for deployment in of_kind(tree, "Deployment"):
        for container in containers(deployment, init=False):
            program = container["command"][0]
            own = {str(p["containerPort"]) for p in container["ports"]}
            own |= {p["name"] for p in container["ports"]}
            env = environment(container, tree, bootstrap.secrets)
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container[kind]
                if "httpGet" in probe:
                    get = probe["httpGet"]
                    assert str(get["port"]) in own, (program, kind)
                    assert get["scheme"] == _PROBE_SCHEMES[program], (program, kind)
                    # A path the program does not serve would fail every probe.
                    assert _serves(program, env, get["path"]), (program, kind, get["path"])
                else:
                    command = probe["exec"]["command"]
                    assert command[:2] == ["ca-service", "healthcheck"], command
                    credential = command[command.index("--credential") + 1]
                    mounts = {m["mountPath"] for m in container["volumeMounts"]}
                    assert credential in mounts, credential
    for name, health in (("ca-gateway", "/-/health"), ("ca-portal", PORTAL_HEALTH_PATH)):
        main = _main(_deployment(tree, name))
        assert main["readinessProbe"]["httpGet"]["path"] == health, name
        # Liveness must not depend on the CA, Redis or the database: a static file.
        for kind in ("startupProbe", "livenessProbe"):
            assert "/static/" in main[kind]["httpGet"]["path"], (name, kind)
    # The portal's probes name the port it listens on.
    portal = _main(_deployment(tree, "ca-portal"))
    listen = int(environment(portal, tree, bootstrap.secrets)["PORTAL_LISTEN"].rsplit(":", 1)[1])
    assert (
        resolve_port(_deployment(tree, "ca-portal"), portal["readinessProbe"]["httpGet"]["port"])
        == listen
    )


# -- selectors -------------------------------------------------------------------------------


def test_selectors_pick_the_pods_they_are_for(tree: list[Object]) -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind(tree, "Deployment")}
    assert set(deployments) == {"ca-service", "ca-gateway", "ca-portal"}
    for name, deployment in deployments.items():
        assert matches(deployment["spec"]["selector"], pod_labels(deployment))
        for other, pods in deployments.items():
            if other != name:
                assert not matches(deployment["spec"]["selector"], pod_labels(pods))
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        for item in of_kind(tree, kind):
            selector = (
                item["spec"]["selector"] if kind != "NetworkPolicy" else item["spec"]["podSelector"]
            )
            picked = [n for n, d in deployments.items() if matches(selector, pod_labels(d))]
            # Each is named after the one Deployment whose pods it selects.
            assert picked == [item["metadata"]["name"]], (kind, item["metadata"]["name"])
    for service in of_kind(tree, "Service"):
        deployment = deployments[service["metadata"]["name"]]
        for port in service["spec"]["ports"]:
            resolve_port(deployment, port["targetPort"])
    for ingress in of_kind(tree, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = named(tree, "Service", backend["name"])
                port_names = {p.get("name") for p in service["spec"]["ports"]}
                assert backend["port"].get("name") in port_names


def test_network_policies_let_through_what_the_configuration_needs_and_no_more(
    tree: list[Object], bootstrap: Bootstrap
) -> None:
    ca, gateway = _deployment(tree, "ca-service"), _deployment(tree, "ca-gateway")
    ca_policy, gateway_policy = (
        named(tree, "NetworkPolicy", "ca-service"),
        named(tree, "NetworkPolicy", "ca-gateway"),
    )
    for policy in (ca_policy, gateway_policy):
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    grpc, http = container_ports(ca)["grpc"], container_ports(ca)["http"]

    # In to the CA: gRPC from the gateway (and the portal, below) only; CRL/OCSP from anywhere.
    assert allows(ca_policy, "ingress", grpc, target=ca, peer_labels=pod_labels(gateway))
    assert not allows(ca_policy, "ingress", grpc, target=ca, peer_labels={"app": "other"})
    assert not allows(ca_policy, "ingress", grpc, target=ca, peer_labels=None, peer_anywhere=True)
    assert allows(ca_policy, "ingress", http, target=ca, peer_labels=None, peer_anywhere=True)
    for port in container_ports(ca).values():
        if port not in (grpc, http):
            assert not allows(ca_policy, "ingress", port, target=ca, peer_labels=None)

    # Out of the CA: DNS, PostgreSQL, Redis and SMTP at the ports the settings name.
    ca_env = environment(_main(ca), tree, bootstrap.secrets)
    config = tomllib.loads(bootstrap.secrets["ca-service-secrets"]["config.toml"].decode())
    needed = {
        53,
        urlsplit(config["database_url"]).port or 5432,
        *_redis_ports(config["redis_url"]),
        int(ca_env["CA_SMTP_PORT"]),
    }
    for port in needed:
        assert allows(ca_policy, "egress", port, target=ca, peer_labels=None), port
    assert not allows(ca_policy, "egress", 443, target=ca, peer_labels=None)

    # The gateway: HTTPS in from anywhere; out to the CA (gRPC and the CRL URL), Redis,
    # the portal and DNS.
    https = container_ports(gateway)["https"]
    assert allows(gateway_policy, "ingress", https, target=gateway, peer_labels=None)
    env = environment(_main(gateway), tree, bootstrap.secrets)
    ca_host, ca_port = env["GATEWAY_CA_ADDRESS"].rsplit(":", 1)
    crl = urlsplit(env["GATEWAY_CRL_URL"])
    service = named(tree, "Service", "ca-service")
    by_port = {p["port"]: resolve_port(ca, p["targetPort"]) for p in service["spec"]["ports"]}
    assert ca_host == crl.hostname == "ca-service"
    assert by_port[int(ca_port)] == grpc and by_port[crl.port or 80] == http
    for port in (grpc, http):
        assert allows(gateway_policy, "egress", port, target=gateway, peer_labels=CA_LABELS)
        assert not allows(
            gateway_policy, "egress", port, target=gateway, peer_labels={"app": "other"}
        ), port
    upstream = urlsplit(env["GATEWAY_UPSTREAM"])
    secret, key = _secret_file(gateway, env, "GATEWAY_REDIS_URL_FILE")
    redis_url = bootstrap.secrets[secret][key].decode().strip()
    card_crl_ports = {urlsplit(u).port or 80 for u in env["GATEWAY_CARD_CRL_URLS"].split(",")}
    for port in (53, upstream.port or 80, *_redis_ports(redis_url), *card_crl_ports):
        assert allows(gateway_policy, "egress", port, target=gateway, peer_labels=None), port
    assert not allows(gateway_policy, "egress", 5432, target=gateway, peer_labels=None)


def _service_of(tree: list[Object], host: str) -> Object:
    """The Service a host name inside the cluster names: NAME, or NAME.NAMESPACE.svc[...]
    of this tree's namespace."""
    name, _, rest = host.partition(".")
    service = named(tree, "Service", name)
    if rest:
        namespace = service["metadata"].get("namespace", "")
        assert rest in (f"{namespace}.svc", f"{namespace}.svc.cluster.local"), host
    return service


def test_the_gateway_routes_the_portal_s_pages_to_the_portal_s_service(
    tree: list[Object], bootstrap: Bootstrap
) -> None:
    gateway = _deployment(tree, "ca-gateway")
    env = environment(_main(gateway), tree, bootstrap.secrets)
    routes = {r.prefix: r for r in parse_routes(env["GATEWAY_ROUTES"], env["GATEWAY_UPSTREAM"])}
    portal = _deployment(tree, "ca-portal")
    portal_env = environment(_main(portal), tree, bootstrap.secrets)
    mount = portal_env["PORTAL_MOUNT"]
    assert routes[mount].mode is Mode.PUBLIC and routes[mount + "card/"].mode is Mode.CARD
    listen = int(portal_env["PORTAL_LISTEN"].rsplit(":", 1)[1])
    for prefix in (mount, mount + "card/"):
        upstream = urlsplit(routes[prefix].upstream)
        service = _service_of(tree, upstream.hostname or "")
        assert service["metadata"]["name"] == "ca-portal"
        by_port = {
            p["port"]: resolve_port(portal, p["targetPort"]) for p in service["spec"]["ports"]
        }
        assert by_port[upstream.port or 80] == listen, prefix
    # The portal's public URL (its e-mail links) ends in the mount the gateway routes.
    assert urlsplit(portal_env["PORTAL_PUBLIC_URL"]).path == mount
    # A card route needs the card CAs (a mounted file) and their CRLs.
    assert env["GATEWAY_CARD_TRUST"] and env["GATEWAY_CARD_CRL_URLS"]


def test_the_portal_is_reached_from_the_gateway_only_and_reaches_the_ca_and_its_database(
    tree: list[Object], bootstrap: Bootstrap
) -> None:
    ca, gateway, portal = (_deployment(tree, n) for n in ("ca-service", "ca-gateway", "ca-portal"))
    policy = named(tree, "NetworkPolicy", "ca-portal")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    http = container_ports(portal)["http"]
    # In: the gateway pods only, on the portal's port only.
    assert allows(policy, "ingress", http, target=portal, peer_labels=GATEWAY_LABELS)
    assert not allows(policy, "ingress", http, target=portal, peer_labels=CA_LABELS)
    assert not allows(policy, "ingress", http, target=portal, peer_labels={"app": "other"})
    assert not allows(policy, "ingress", http, target=portal, peer_labels=None, peer_anywhere=True)
    assert not allows(policy, "ingress", 8080, target=portal, peer_labels=GATEWAY_LABELS)
    gateway_policy = named(tree, "NetworkPolicy", "ca-gateway")
    assert allows(gateway_policy, "egress", http, target=gateway, peer_labels=PORTAL_LABELS)

    # Out: the CA's gRPC port (the CA admits it), its own PostgreSQL, DNS; nothing else.
    env = environment(_main(portal), tree, bootstrap.secrets)
    ca_host, ca_port = env["PORTAL_CA_ADDRESS"].rsplit(":", 1)
    service = _service_of(tree, ca_host)
    assert service["metadata"]["name"] == "ca-service"
    by_port = {p["port"]: resolve_port(ca, p["targetPort"]) for p in service["spec"]["ports"]}
    grpc = container_ports(ca)["grpc"]
    assert by_port[int(ca_port)] == grpc
    assert allows(policy, "egress", grpc, target=portal, peer_labels=CA_LABELS)
    assert not allows(policy, "egress", grpc, target=portal, peer_labels={"app": "other"})
    ca_policy = named(tree, "NetworkPolicy", "ca-service")
    assert allows(ca_policy, "ingress", grpc, target=ca, peer_labels=PORTAL_LABELS)
    secret, key = _secret_file(portal, env, "PORTAL_DATABASE_URL_FILE")
    database = urlsplit(bootstrap.secrets[secret][key].decode().strip())
    needed = {53, database.port or 5432}
    for port in needed:
        assert allows(policy, "egress", port, target=portal, peer_labels=None), port
    for port in {80, 443, 587, 6379, 8080, http} - needed:
        assert not allows(policy, "egress", port, target=portal, peer_labels=None), port


def test_with_redis_sentinel_both_reach_the_sentinels_and_the_primary(
    tree: list[Object], sentinel_bootstrap: Bootstrap
) -> None:
    secrets = sentinel_bootstrap.secrets
    config = tomllib.loads(secrets["ca-service-secrets"]["config.toml"].decode())
    gateway = _deployment(tree, "ca-gateway")
    gateway_env = environment(_main(gateway), tree, secrets)
    secret, key = _secret_file(gateway, gateway_env, "GATEWAY_REDIS_URL_FILE")
    urls = {
        "ca-service": config["redis_url"],
        "ca-gateway": secrets[secret][key].decode().strip(),
    }
    for name, url in urls.items():
        assert is_sentinel_url(url)
        policy, deployment = named(tree, "NetworkPolicy", name), _deployment(tree, name)
        assert _redis_ports(url) == {26379, 6379}
        for port in _redis_ports(url):
            assert allows(policy, "egress", port, target=deployment, peer_labels=None), port


# -- pods --------------------------------------------------------------------------------------


def test_pods_meet_the_restricted_pod_security_standard(tree: list[Object]) -> None:
    for deployment in of_kind(tree, "Deployment"):
        spec = pod_spec(deployment)
        name = deployment["metadata"]["name"]
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] >= 10000, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        # A Service named ca-service would otherwise put CA_SERVICE_* into the settings'
        # namespace.
        assert spec["enableServiceLinks"] is False, name
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec), name
        # The volume types the "restricted" standard allows (of those used here).
        allowed = {"secret", "emptyDir", "configMap", "persistentVolumeClaim"}
        assert all(set(v) & allowed for v in spec["volumes"]), name
        for container in containers(deployment):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, container["name"]
            assert security["readOnlyRootFilesystem"] is True, container["name"]
            assert security["capabilities"] == {"drop": ["ALL"]}, container["name"]
            assert not security.get("privileged"), container["name"]
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, container["name"]
            assert all("hostPort" not in p for p in container.get("ports", []))
            image = container["image"]
            assert image.rsplit(":", 1)[1] == PROJECT_VERSION, image
        # Every writable place is an emptyDir (/tmp in every long-running container) or,
        # for the portal's files, a claim.
        for container in containers(deployment, init=False):
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], name
            for path, volume in mounts.items():
                writable = bool({"emptyDir", "persistentVolumeClaim"} & set(volumes[volume]))
                read_only = next(
                    m.get("readOnly", False)
                    for m in container["volumeMounts"]
                    if m["mountPath"] == path
                )
                assert writable or read_only, (name, path)


def test_several_replicas_each_with_a_disruption_budget(tree: list[Object]) -> None:
    for deployment in of_kind(tree, "Deployment"):
        name = deployment["metadata"]["name"]
        replicas = deployment["spec"]["replicas"]
        assert replicas >= 2, name
        budget = named(tree, "PodDisruptionBudget", name)["spec"]
        assert budget["maxUnavailable"] < replicas, name
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        assert pod_spec(deployment)["containers"][0]["command"][-1] == "serve"


def test_the_example_overlay_changes_what_it_says() -> None:
    overlay = rendered("overlays/example")
    assert {
        item["metadata"].get("namespace") for item in overlay if item["kind"] != "Namespace"
    } == {"pki"}
    namespace = named(overlay, "Namespace", "pki")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert _deployment(overlay, "ca-service")["spec"]["replicas"] == 3
    assert named(overlay, "Service", "ca-gateway")["spec"]["type"] == "LoadBalancer"
    images = {c["image"] for d in of_kind(overlay, "Deployment") for c in containers(d)}
    assert images == {f"registry.example.jp/pki/ca-service:{PROJECT_VERSION}"}
    # The patch replaced the egress list: PostgreSQL only to its address.
    egress = named(overlay, "NetworkPolicy", "ca-service")["spec"]["egress"]
    postgres = [rule for rule in egress if rule["ports"][0]["port"] == 5432]
    assert postgres == [
        {
            "to": [{"ipBlock": {"cidr": "10.20.0.10/32"}}],
            "ports": [{"port": 5432, "protocol": "TCP"}],
        }
    ]
    # The portal: its own PostgreSQL server only, its files on a ReadWriteMany class.
    egress = named(overlay, "NetworkPolicy", "ca-portal")["spec"]["egress"]
    assert [rule["to"] for rule in egress if rule["ports"][0]["port"] == 5432] == [
        [{"ipBlock": {"cidr": "10.20.0.11/32"}}]
    ]
    assert all("to" in rule for rule in egress)
    claim = named(overlay, "PersistentVolumeClaim", "ca-portal-files")["spec"]
    assert (claim["storageClassName"], claim["accessModes"]) == ("nfs-csi", ["ReadWriteMany"])
    # The gateway: the card CRL server only, by address; the portal's pages to its Service.
    egress = named(overlay, "NetworkPolicy", "ca-gateway")["spec"]["egress"]
    assert all("to" in rule for rule in egress)
    assert [rule["to"] for rule in egress if rule["ports"][0]["port"] == 80] == [
        [{"ipBlock": {"cidr": "203.0.113.80/32"}}]
    ]
    routes = config_maps(overlay)["ca-gateway-config"]["GATEWAY_ROUTES"]
    assert {r.upstream for r in parse_routes(routes, "http://x:1") if r.prefix != "/"} == {
        "http://ca-portal.pki.svc:8090"
    }


# -- the image -------------------------------------------------------------------------------


def test_the_containerfile_passes_hadolint_which_does_flag_faults(tmp_path: Path) -> None:
    hadolint = tool("hadolint")
    clean = run([hadolint, "--no-color", str(ROOT / "deploy/container/Containerfile")], check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    faulty = tmp_path / "Containerfile"
    faulty.write_text("FROM python\nRUN apt-get install gcc\nUSER root\n")
    flagged = run([hadolint, "--no-color", str(faulty)], check=False)
    assert flagged.returncode != 0
    assert {"DL3006", "DL3008", "DL3002"} <= set(re.findall(r"DL\d{4}", flagged.stdout))


def test_the_containerfile_builds_what_the_manifests_run(tree: list[Object]) -> None:
    text = (ROOT / "deploy/container/Containerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.search(r":3\.\d+\.\d+-slim", base.group(1)), "pin a patch release"
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and " AS build" in stages[0]
    final = stages[1]
    # Nothing to build with at run time, a numeric non-root user.
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final)
    user = re.search(r"^USER (\d+):(\d+)$", final, re.M)
    assert user
    for deployment in of_kind(tree, "Deployment"):
        context = pod_spec(deployment)["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == tuple(map(int, user.groups()))
        for container in containers(deployment, init=False):
            assert container["command"][0] in SCRIPTS
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", stages[0], re.M):
        for part in source.split():
            assert (ROOT / part).exists(), part
    exposed = {int(p) for p in re.findall(r"\d+", re.search(r"^EXPOSE (.+)$", final, re.M)[1])}
    declared = {p for d in of_kind(tree, "Deployment") for p in container_ports(d).values()}
    assert exposed == declared
