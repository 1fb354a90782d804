"""The generated gRPC stubs, imported from this one place (see ca_service.protogen)."""

from ca_service.api.ca.v1 import ca_pb2 as pb
from ca_service.api.ca.v1 import ca_pb2_grpc as pb_grpc

__all__ = ["pb", "pb_grpc"]
