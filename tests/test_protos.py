"""The committed stubs in ca_service/api must be exactly what protoc makes from protos/."""

from __future__ import annotations

from pathlib import Path

from ca_service import protogen


def test_generated_stubs_are_current(tmp_path: Path) -> None:
    fresh = protogen.generate(tmp_path)
    committed_root = protogen.OUTPUT_ROOT
    stale = []
    for path in fresh:
        relative = path.relative_to(tmp_path)
        committed = committed_root / relative
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(relative))
    extra = {
        str(p.relative_to(committed_root))
        for p in (committed_root / "ca").rglob("*")
        if p.suffix in {".py", ".pyi"}
    } - {str(p.relative_to(tmp_path)) for p in fresh}
    assert not stale and not extra, (
        f"stale generated stubs {stale}, unexpected files {sorted(extra)}: "
        "run `python -m ca_service.protogen` and commit the result"
    )
