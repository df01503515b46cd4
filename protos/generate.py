"""Generate the Python gRPC stubs for every .proto file under protos/.

Run as its own process (`python -m protos.generate`, which `make protos` does):
grpc_tools.protoc must not run inside a process that imported TensorFlow.
The generated modules sit beside their .proto files and are not committed, and so does
protos/tfserving/descriptors.binpb, the vendored TF Serving protos as one FileDescriptorSet: the development
model server builds its messages from it in a descriptor pool of its own (model_server/wire.py).
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TFSERVING_DESCRIPTORS = ROOT / "protos" / "tfserving" / "descriptors.binpb"


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))


def main() -> int:
    from grpc_tools import protoc

    well_known = str(resources.files("grpc_tools") / "_proto")
    files = proto_files()
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{well_known}",
        f"--python_out={ROOT}",
        f"--pyi_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        print(f"protoc failed with exit code {code} on: {' '.join(files)}", file=sys.stderr)
        return code
    tfserving = [file for file in files if file.startswith("protos/tfserving/")]
    code = protoc.main([
        "grpc_tools.protoc", f"-I{ROOT}", f"-I{well_known}", "--include_imports",
        f"--descriptor_set_out={TFSERVING_DESCRIPTORS}", *tfserving,
    ])
    if code != 0:
        print(f"protoc failed with exit code {code} writing {TFSERVING_DESCRIPTORS}", file=sys.stderr)
        return code
    print(f"generated stubs for {len(files)} proto files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
