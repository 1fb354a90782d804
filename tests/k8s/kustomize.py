"""The part of kustomize that deploy/kubernetes uses, in Python, so that the suite can render
the base and the example overlay without a kustomize binary: ``resources`` (files and
directories), strategic-merge ``patches`` naming their object, ``namespace`` and ``images``.
Anything else in a kustomization, or in a patch, is refused rather than half-done, and
test_kustomize.py checks the result against ``kubectl kustomize`` where kubectl is present.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Unsupported", "object_key", "render", "strategic_merge"]

Object = dict[str, Any]

_FIELDS = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "patches"})

# Lists that strategic merge patches merge by a key, rather than replace (Kubernetes'
# patchMergeKey). Those deploy/kubernetes patches may touch; the others are refused.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
_REFUSED_LISTS = frozenset(
    {
        "ports",
        "imagePullSecrets",
        "hostAliases",
        "topologySpreadConstraints",
        "ephemeralContainers",
        "volumeDevices",
        "resourceClaims",
        "schedulingGates",
        "finalizers",
        "ownerReferences",
    }
)
# Kinds without a namespace (those the manifests could hold).
_CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}
)


class Unsupported(ValueError):
    """A kustomize feature this renderer does not implement."""


def object_key(item: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = item.get("metadata", {})
    return item["kind"], metadata.get("namespace", ""), metadata["name"]


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into ``base`` as a strategic merge patch: maps merge key by key
    (null deletes), lists with a merge key merge item by item, other lists are replaced."""
    if isinstance(patch, dict) and isinstance(base, dict):
        merged = dict(base)
        for key, value in patch.items():
            if key.startswith("$"):
                raise Unsupported(f"patch directive {key}")
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(patch, list):
        if field in _REFUSED_LISTS:
            raise Unsupported(f"a patch of the list {field!r}")
        merge_key = _MERGE_KEYS.get(field)
        if merge_key is not None and isinstance(base, list):
            return _merge_list(base, patch, merge_key)
    return copy.deepcopy(patch)


def _merge_list(base: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise Unsupported(f"a list item without its merge key {merge_key!r}")
        for index, existing in enumerate(merged):
            if existing.get(merge_key) == item[merge_key]:
                merged[index] = strategic_merge(existing, item)
                break
        else:
            merged.append(copy.deepcopy(item))
    return merged


def _documents(path: Path) -> list[Object]:
    return [item for item in yaml.safe_load_all(path.read_text(encoding="utf-8")) if item]


def _containers(item: Object) -> Iterable[Object]:
    spec = item.get("spec", {}).get("template", {}).get("spec", {})
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def _set_image(container: Object, rules: list[Mapping[str, str]]) -> None:
    image = container.get("image", "")
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    for rule in rules:
        if rule["name"] != name:
            continue
        if set(rule) - {"name", "newName", "newTag"}:
            raise Unsupported(f"image rule fields {sorted(set(rule) - {'name'})}")
        tag = image[len(name) :]
        new_name = rule.get("newName", name)
        new_tag = f":{rule['newTag']}" if "newTag" in rule else tag
        container["image"] = new_name + new_tag


def render(directory: Path) -> list[Object]:
    """The objects ``kustomize build directory`` makes (in the order of the resources)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - _FIELDS
    if unknown:
        raise Unsupported(f"{directory}: kustomization fields {sorted(unknown)}")
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        objects += render(path) if path.is_dir() else _documents(path)
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise Unsupported(f"patch fields {sorted(patch_entry)} (only path)")
        for patch in _documents(directory / patch_entry["path"]):
            wanted = (patch["kind"], patch["metadata"]["name"])
            matches = [
                index
                for index, item in enumerate(objects)
                if (item["kind"], item["metadata"]["name"]) == wanted
            ]
            if len(matches) != 1:
                raise Unsupported(f"patch {patch_entry['path']} matches {len(matches)} objects")
            objects[matches[0]] = strategic_merge(objects[matches[0]], patch)
    namespace = kustomization.get("namespace")
    if namespace:
        for item in objects:
            if item["kind"] not in _CLUSTER_SCOPED:
                item.setdefault("metadata", {})["namespace"] = namespace
    images = kustomization.get("images", [])
    for item in objects:
        for container in _containers(item):
            _set_image(container, images)
    keys = [object_key(item) for item in objects]
    if len(keys) != len(set(keys)):
        raise Unsupported(f"{directory}: an object appears twice")
    return objects
