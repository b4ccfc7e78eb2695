"""Where protoc finds the well-known types (google/protobuf/any.proto, which
proto/google/rpc/status.proto imports): the system's include directories, or
the copy grpc_tools ships (scripts/setup installs it into .build-python).
Shared by fuzz/seeds.py and fuzz/grpc_seeds.py."""
import importlib.util
import os
import pathlib
import sys

repo = pathlib.Path(__file__).resolve().parent.parent


def include_dir():
    """The directory to pass to protoc as -I; exits with a clear message if there is none."""
    if (repo / ".build-python").is_dir() and str(repo / ".build-python") not in sys.path:
        sys.path.insert(0, str(repo / ".build-python"))
    candidates = ["/usr/include", "/usr/local/include"]
    # Found without importing it: grpc_tools imports grpcio's `grpc`, which
    # would shadow a generated grpc/health/v1 module.
    spec = importlib.util.find_spec("grpc_tools")
    if spec is not None and spec.origin:
        candidates.append(os.path.join(os.path.dirname(spec.origin), "_proto"))
    for directory in candidates:
        if os.path.exists(os.path.join(directory, "google", "protobuf", "any.proto")):
            return directory
    sys.exit("google/protobuf/any.proto not found (run scripts/setup, which installs grpc_tools)")
