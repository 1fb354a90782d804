"""The one place where callers are authorised and CAErrors become gRPC statuses."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ca_service.adapters.grpc.auth import allowed_roles, caller_from_pem
from ca_service.domain.profiles import Caller, Role
from ca_service.errors import ERROR_DOMAIN, CAError, PermissionDenied, Unauthenticated

__all__ = ["CALLER", "CALLER_ROLE", "AuthorizationInterceptor", "abort_with", "status_for"]

# The authorised caller (role and credential name), for servicers whose rules depend on it
# and for the audit log; each call runs in its own task, so the values never leak between
# calls.
CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")
CALLER_ROLE: contextvars.ContextVar[Role] = contextvars.ContextVar("caller_role")

log = logging.getLogger(__name__)


def status_for(error: CAError) -> grpc.Status:
    code = grpc.StatusCode[error.grpc_status]
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.ErrorInfo(
            reason=error.reason.value, domain=ERROR_DOMAIN, metadata=dict(error.metadata)
        )
    )
    status = status_pb2.Status(code=code.value[0], message=error.message, details=[detail])
    return rpc_status.to_status(status)


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: CAError) -> None:
    status = status_for(error)
    await context.abort(status.code, status.details, status.trailing_metadata)


def _caller(context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
    certificates = list(context.auth_context().get("x509_pem_cert", ()))
    if not certificates:
        raise Unauthenticated("a client certificate is required")
    caller = caller_from_pem(certificates[0])
    if caller is None:
        raise PermissionDenied("the client certificate names no role")
    return caller


Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


def _authorize(method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    roles = allowed_roles(method)
    if roles is not None:
        caller = _caller(context)
        if caller.role not in roles:
            raise PermissionDenied(f"role {caller.role.value} may not call {method}")
        CALLER.set(caller)
        CALLER_ROLE.set(caller.role)


async def _map_error(
    method: str, context: grpc.aio.ServicerContext[Any, Any], error: BaseException
) -> None:
    if isinstance(error, grpc.aio.AbortError | asyncio.CancelledError):
        raise error
    if isinstance(error, CAError):
        if error.grpc_status == "INTERNAL":
            log.error("%s failed: %s", method, error.message)
        await abort_with(context, error)
    # Requests may hold passwords or keys: log the failure, never the request.
    log.error("%s failed unexpectedly", method, exc_info=error)
    await abort_with(context, CAError("internal error"))


def _guard_unary(method: str, behavior: Behavior) -> Behavior:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            _authorize(method, context)
            return await behavior(request, context)
        except BaseException as error:
            await _map_error(method, context, error)
            raise

    return guarded


def _guard_stream(method: str, behavior: StreamBehavior) -> StreamBehavior:
    async def guarded(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            _authorize(method, context)
            async for item in behavior(request, context):
                yield item
        except BaseException as error:
            await _map_error(method, context, error)
            raise

    return guarded


if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor


class AuthorizationInterceptor(_ServerInterceptor):
    """Checks the caller's role and maps errors for every unary and server-streaming
    method of our API. Health and reflection pass through (mTLS still applies)."""

    def __init__(self) -> None:
        # intercept_service runs for every call; the guarded handler of a method is built
        # once and reused.
        self._guarded: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or allowed_roles(method) is None:
            return handler
        if handler.unary_unary is not None:
            guarded = grpc.unary_unary_rpc_method_handler(
                _guard_unary(method, cast(Behavior, handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        elif handler.unary_stream is not None:
            guarded = grpc.unary_stream_rpc_method_handler(
                _guard_stream(method, cast(StreamBehavior, handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        else:
            raise TypeError(f"{method}: client-streaming methods are not supported")
        self._guarded[method] = guarded
        return guarded
