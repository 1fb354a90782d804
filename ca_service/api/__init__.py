"""The generated gRPC stubs, imported from this one place (see ca_service.protogen)."""

from ca_service.api.ca.v1 import ca_pb2 as pb
from ca_service.api.ca.v1 import ca_pb2_grpc as pb_grpc
from ca_service.api.reasons import ErrorReason

__all__ = ["ErrorReason", "pb", "pb_grpc"]
