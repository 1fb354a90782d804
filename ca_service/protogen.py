"""Generates the Python stubs in ``ca_service/api`` from ``protos/``.

Run ``python -m ca_service.protogen`` after editing a ``.proto`` file. The generated files
are committed; ``tests/test_protos.py`` regenerates them into a temporary directory and
fails when the committed copies are stale. protoc names modules after the proto path
(``ca.v1.ca_pb2``), so the imports between generated modules are rewritten to live under
``ca_service.api``; nothing else is changed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = PROJECT_ROOT / "protos"
OUTPUT_ROOT = PROJECT_ROOT / "ca_service" / "api"
PACKAGE_PREFIX = "ca_service.api"

_IMPORT_PATTERN = re.compile(r"^from ca\.v1 import ", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(output_root: Path = OUTPUT_ROOT) -> list[Path]:
    """Runs protoc (grpcio-tools) and returns the generated files."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    sources = [str(path.relative_to(PROTO_ROOT)) for path in proto_files()]
    output_root.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={output_root}",
        f"--pyi_out={output_root}",
        f"--grpc_python_out={output_root}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    generated = sorted(p for p in output_root.rglob("*") if p.suffix in {".py", ".pyi"})
    for path in generated:
        if path.name == "__init__.py":
            continue
        text = path.read_text()
        path.write_text(_IMPORT_PATTERN.sub(f"from {PACKAGE_PREFIX}.ca.v1 import ", text))
    for directory in {p.parent for p in generated} | {output_root / "ca"}:
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text("")
    return sorted(p for p in output_root.rglob("*") if p.suffix in {".py", ".pyi"})


def main() -> int:
    for path in generate():
        print(path.relative_to(PROJECT_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
