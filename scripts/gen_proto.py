"""Regenerate the Python code for the wire contract under proto/comity/v1/.

Usage: python scripts/gen_proto.py [OUTDIR]

Writes *_pb2.py, *_pb2.pyi and *_pb2_grpc.py beside the .proto files (or into OUTDIR,
which the staleness test uses to compare). Needs the grpcio-tools version pinned in the
`test` extra, so that the protobuf runtime floor in the generated code matches pyproject.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent / "proto"


def generate(out_dir: Path) -> None:
    """Run protoc over every .proto file under proto/comity/v1/ into ``out_dir``."""
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "comity" / "v1").glob("*.proto"))
    include = str(files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
