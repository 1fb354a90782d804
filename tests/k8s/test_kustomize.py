"""The Python rendering of deploy/kubernetes (tests/k8s/kustomize.py): its strategic merge
on its own, and its output against the real kustomize (``kubectl kustomize``) for the base
and the example overlay."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.k8s.kustomize import Unsupported, object_key, render, strategic_merge
from tests.k8s.support import KUBERNETES, TREES
from tests.support import run

POD = {
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "a",
                        "image": "x:1",
                        "args": ["--one", "--two"],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                        "ports": [{"containerPort": 1}],
                    },
                    {"name": "b", "image": "y:1"},
                ]
            }
        },
    }
}


def test_maps_merge_lists_with_a_merge_key_merge_by_it_and_null_deletes() -> None:
    patch = {
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "a",
                            "args": ["--three"],
                            "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                            "volumeMounts": [{"name": "w", "mountPath": "/v", "readOnly": True}],
                        },
                        {"name": "c", "image": "z:1"},
                    ]
                }
            },
        }
    }
    merged = strategic_merge(POD, patch)
    a, b, c = merged["spec"]["template"]["spec"]["containers"]
    assert merged["spec"]["replicas"] == 3
    assert a["image"] == "x:1" and a["args"] == ["--three"]  # a plain list is replaced
    assert a["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]
    assert a["volumeMounts"] == [{"name": "w", "mountPath": "/v", "readOnly": True}]
    assert (b, c) == ({"name": "b", "image": "y:1"}, {"name": "c", "image": "z:1"})
    assert POD["spec"]["replicas"] == 2  # the base is left alone
    dropped = strategic_merge(POD, {"spec": {"replicas": None}})
    assert "replicas" not in dropped["spec"]


@pytest.mark.parametrize(
    "patch",
    [
        {"spec": {"$patch": "replace"}},
        {"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}},
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 2}]}]}
                }
            }
        },
    ],
)
def test_what_it_does_not_implement_is_refused(patch: dict[str, object]) -> None:
    with pytest.raises(Unsupported):
        strategic_merge(POD, patch)


def test_unknown_kustomization_fields_are_refused(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(Unsupported, match="commonLabels"):
        render(tmp_path)


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        message = "kubectl (with its built-in kustomize) is not installed"
        if os.environ.get("CI"):
            pytest.fail(message + "; the machine image of CI has it")
        pytest.skip(message)
    return found


@pytest.mark.parametrize("tree", TREES)
def test_the_rendering_equals_kustomize(tree: str) -> None:
    kubectl = _kubectl()
    built = run([kubectl, "kustomize", str(KUBERNETES / tree)], timeout=60).stdout
    theirs = {object_key(item): item for item in yaml.safe_load_all(built) if item}
    ours = {object_key(item): item for item in render(KUBERNETES / tree)}
    assert sorted(ours) == sorted(theirs)
    for key, item in ours.items():
        assert item == theirs[key], key
