"""isthmusd's HTTP API for the CLI: apply, get and delete objects over a unix socket.

Every request is JSON and every failure is `{"errors": [one line per problem]}` with a
4xx/5xx status, so the CLI can print errors verbatim and never shows a traceback. An
apply or delete is all or nothing: it is fully parsed and checked before the store is
touched, and then written in one store transaction.

The event loop never parses: decoding, YAML parsing and validation of an apply or delete
(and the `validate_apply` hook) run on one worker thread, one request at a time, so
health checks, reads and the xDS server keep answering during a large apply. Planning
and the store write stay on the loop thread, back to back without an await, so the plan
(created / configured / unchanged) is exactly what the write does and the store is only
ever touched from the loop. At most `max_waiting` applies and deletes wait for the worker;
one more is answered 429 with `Retry-After` instead of queueing without bound.

The same object may be defined more than once in one apply, as kubectl allows: every
copy is checked, the last one is stored, once, in the place of the first (see
`isthmus.api.loader.final_objects`), and the apply answers one result per object, which
says how many copies there were and which one was applied.

Any request but GET and HEAD may carry an `Idempotency-Key`: see `isthmus.daemon.idempotency`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from isthmus.api.errors import ApiError
from isthmus.api.loader import FinalObject, LoadedObject, final_objects, load_sources
from isthmus.api.updates import update_problems
from isthmus.daemon.idempotency import IdempotencyCache, idempotency_middleware
from isthmus.store import Conflict, NotFound, ObjectKey, ResourceStore, same_content
from isthmus.store.content import expected_version

__all__ = [
    "IDEMPOTENCY",
    "MAX_WAITING_CHANGES",
    "STORE",
    "ApiHooks",
    "build_app",
    "start_unix_site",
]

logger = logging.getLogger("isthmus.daemon.api")

STORE = web.AppKey("store", ResourceStore)  # type: ignore[type-abstract]
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyCache)

MAX_REQUEST_BYTES = 64 * 1024 * 1024
DEFAULT_NAMESPACE = "default"
# Applies and deletes waiting for the parse worker beyond the one it is running.
MAX_WAITING_CHANGES = 8
RETRY_AFTER_SECONDS = 1

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _no_cross_checks(objects: Sequence[LoadedObject]) -> list[str]:
    return []


@dataclass(frozen=True)
class ApiHooks:
    """What the daemon plugs into the API; the defaults give a working object API alone.

    `validate_apply` sees every object of one apply together (after each passed its own
    schema; the last copy of an object defined more than once) and returns error lines;
    any line refuses the whole apply. It runs on the API's worker thread: it must not
    touch the event loop or write the store.
    `extra_routes` adds endpoints such as proxy status.
    """

    validate_apply: Callable[[Sequence[LoadedObject]], list[str]] = _no_cross_checks
    # Lines to warn about (as Istio's webhook warns): the apply goes ahead.
    warn_apply: Callable[[Sequence[LoadedObject]], list[str]] = _no_cross_checks
    extra_routes: Sequence[web.AbstractRouteDef] = field(default_factory=tuple)
    default_namespace: str = DEFAULT_NAMESPACE


class _RequestError(Exception):
    """A refused request: HTTP status and the error lines to send back."""

    def __init__(
        self, status: int, errors: Sequence[str], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__("; ".join(errors))
        self.status = status
        self.errors = list(errors)
        self.headers = dict(headers or {})


def build_app(
    store: ResourceStore,
    hooks: ApiHooks | None = None,
    *,
    max_waiting: int = MAX_WAITING_CHANGES,
    idempotency: IdempotencyCache | None = None,
) -> web.Application:
    """The daemon's aiohttp application serving the object API on `store`.

    `max_waiting` bounds the applies and deletes that wait for the parse worker;
    `idempotency` is the key cache (a new one per app by default: keys are per process).
    """
    hooks = hooks or ApiHooks()
    idempotency = idempotency if idempotency is not None else IdempotencyCache()
    worker = _ParseWorker(max_waiting)
    api = _ObjectApi(store, hooks, worker)
    app = web.Application(
        middlewares=[idempotency_middleware(idempotency), _errors_as_json],
        client_max_size=MAX_REQUEST_BYTES,
    )
    app[STORE] = store
    app[IDEMPOTENCY] = idempotency
    app.on_cleanup.append(worker.close)
    app.add_routes(
        [
            web.get("/v1/healthz", api.healthz),
            web.post("/v1/apply", api.apply),
            web.get("/v1/objects", api.get_objects),
            web.delete("/v1/objects", api.delete_objects),
            *hooks.extra_routes,
        ]
    )
    return app


async def start_unix_site(app: web.Application, path: Path) -> web.AppRunner:
    """Serve `app` on the unix socket `path` (mode 0600) and return its runner.

    A socket file left by a crashed daemon is replaced; one a live daemon answers on is
    not (two daemons on one home would corrupt each other's view of the mesh). The
    runner's cleanup() also removes the socket file, so "no socket" means "not running".
    """
    if path.exists():
        if _socket_answers(path):
            raise RuntimeError(f"isthmusd is already running on {path}")
        path.unlink()
    runner = _UnixRunner(app, path)
    await runner.setup()
    try:
        site = web.UnixSite(runner, str(path))
        await site.start()
        os.chmod(path, 0o600)
    except BaseException:
        await runner.cleanup()
        raise
    return runner


class _UnixRunner(web.AppRunner):
    """An AppRunner that removes its socket file once it stops serving."""

    def __init__(self, app: web.Application, path: Path) -> None:
        super().__init__(app, access_log=None)
        self._path = path

    async def cleanup(self) -> None:
        try:
            await super().cleanup()
        finally:
            self._path.unlink(missing_ok=True)


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class _ParseWorker:
    """One thread for the CPU-heavy half of applies and deletes, and their admission.

    At most one request is parsed at a time; `max_waiting` more may wait for it. A
    request beyond that is refused at once with 429 and `Retry-After` (before its body
    is read), so a burst costs neither unbounded memory nor an unbounded wait.
    """

    def __init__(self, max_waiting: int) -> None:
        if max_waiting < 0:
            raise ValueError("max_waiting must not be negative")
        self.max_waiting = max_waiting
        self._admitted = 0
        self._executor: ThreadPoolExecutor | None = None

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self._admitted > self.max_waiting:
            waiting = self._admitted - 1
            if waiting == 0:
                busy = "isthmusd is busy with another apply; retry shortly"
            else:
                queue = "1 apply is" if waiting == 1 else f"{waiting} applies are"
                busy = f"isthmusd is busy: {queue} waiting; retry shortly"
            raise _RequestError(
                429,
                [busy],
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` on the worker thread; the loop keeps serving meanwhile."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="isthmusd-parse")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, _without_gc_pauses, work
        )

    async def close(self, _app: web.Application | None = None) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _without_gc_pauses(work: Callable[[], T]) -> T:
    """Run `work` with the cyclic garbage collector paused.

    Parsing a large document allocates millions of objects, which triggers full
    collections; each one walks the whole heap holding the GIL (100-300 ms for a 4 MiB
    manifest), stalling the event loop although the parse runs on another thread. The
    parse makes no cyclic garbage worth collecting, so collection waits until it ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return work()
    finally:
        if was_enabled:
            gc.enable()


class _ObjectApi:
    """Handlers of the object endpoints, bound to one store and the daemon's hooks."""

    def __init__(self, store: ResourceStore, hooks: ApiHooks, worker: _ParseWorker) -> None:
        self._store = store
        self._hooks = hooks
        self._worker = worker

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "revision": self._store.revision})

    async def apply(self, request: web.Request) -> web.Response:
        async with self._worker.admit():
            raw = await request.read()
            dry_run, objects, warnings = await self._worker.run(lambda: self._parse_apply(raw))
            # Back on the loop: plan and write with no await in between.
            results = _plan_apply(self._store, objects)
            refused = _update_problems(self._store, objects)
            if refused:
                raise _RequestError(422, refused)
            if not dry_run:
                try:
                    _check_superseded_versions(self._store, objects)
                    self._store.apply([(ObjectKey(*o.last.key), o.last.body) for o in objects])
                except Conflict as exc:
                    raise _RequestError(409, [str(exc)]) from exc
                except ValueError as exc:
                    raise _RequestError(422, [str(exc)]) from exc
        _log(
            "apply",
            dry_run=dry_run,
            objects=len(objects),
            changed=sum(r["result"] != "unchanged" for r in results),
            revision=self._store.revision,
        )
        return web.json_response(
            {
                "results": results,
                "dryRun": dry_run,
                "revision": self._store.revision,
                "warnings": warnings,
            }
        )

    def _parse_apply(self, raw: bytes) -> tuple[bool, list[FinalObject], list[str]]:
        """Worker thread: decode, parse and check every object of an apply."""
        payload = _decode_object(raw)
        dry_run = _optional(payload, "dryRun", bool, False)
        objects = final_objects(self._load(payload))
        if not objects:
            raise _RequestError(422, ["no objects passed to apply"])
        applied = [o.last for o in objects]
        problems = self._hooks.validate_apply(applied)
        if problems:
            raise _RequestError(422, problems)
        return dry_run, objects, self._hooks.warn_apply(applied)

    async def get_objects(self, request: web.Request) -> web.Response:
        query = request.query
        found = self._store.list(kind=query.get("kind"), namespace=query.get("namespace"))
        name = query.get("name")
        items = [o.body for o in found if name is None or o.key.name == name]
        return web.json_response({"items": items, "revision": self._store.revision})

    async def delete_objects(self, request: web.Request) -> web.Response:
        async with self._worker.admit():
            raw = await request.read()
            keys = await self._worker.run(lambda: self._parse_delete(raw))
            missing = [key for key in dict.fromkeys(keys) if self._store.get(key) is None]
            if missing:
                raise _RequestError(404, [f"{key} not found" for key in missing])
            try:
                deleted = self._store.delete(keys)
            except NotFound as exc:
                raise _RequestError(404, [str(exc)]) from exc
        _log("delete", objects=len(deleted), revision=self._store.revision)
        results = [_result(o.key, o.body, "deleted") for o in deleted]
        return web.json_response({"results": results, "revision": self._store.revision})

    def _parse_delete(self, raw: bytes) -> list[ObjectKey]:
        """Worker thread: the keys a delete names, directly or through documents."""
        payload = _decode_object(raw)
        if "keys" in payload:
            keys = _keys(payload["keys"])
        elif "documents" in payload:
            keys = [ObjectKey(*o.key) for o in self._load(payload)]
        else:
            raise _RequestError(400, ['delete needs "keys" or "documents"'])
        if not keys:
            raise _RequestError(422, ["no objects passed to delete"])
        return keys

    def _load(self, payload: dict[str, Any]) -> list[LoadedObject]:
        """Parse every document; report the problems of all documents together."""
        namespace = _optional(payload, "namespace", str, None) or self._hooks.default_namespace
        documents = payload.get("documents")
        if not isinstance(documents, list):
            raise _RequestError(400, ['"documents" must be a list of {"source", "text"}'])
        for index, document in enumerate(documents):
            if not (
                isinstance(document, dict)
                and isinstance(document.get("source"), str)
                and isinstance(document.get("text"), str)
            ):
                raise _RequestError(400, [f"documents[{index}] must be {{source: str, text: str}}"])
        try:
            return load_sources(((d["source"], d["text"]) for d in documents), namespace)
        except ApiError as exc:
            raise _RequestError(422, exc.errors) from exc


def _plan_apply(store: ResourceStore, objects: Sequence[FinalObject]) -> list[dict[str, Any]]:
    """kubectl's verdict per object (created / configured / unchanged), decided exactly as
    the store will decide it, so a dry run reports what a real apply would do. An object
    defined more than once gets one verdict, for its last copy (what is stored); its
    result says how many copies there were and where the last one is."""
    results = []
    for obj in objects:
        key = ObjectKey(*obj.last.key)
        stored = store.get(key)
        if stored is None:
            verdict = "created"
        elif same_content(stored.body, obj.last.body):
            verdict = "unchanged"
        else:
            verdict = "configured"
        result: dict[str, Any] = _result(key, obj.last.body, verdict)
        if obj.superseded:
            result["copies"] = len(obj.copies)
            result["appliedFrom"] = obj.last.place
        results.append(result)
    return results


def _update_problems(store: ResourceStore, objects: Sequence[FinalObject]) -> list[str]:
    """What the apply may not change in objects that exist (Kubernetes' update rules, such
    as an immutable Secret's data), one line per problem; a dry run reports them too."""
    lines = []
    for obj in objects:
        key = ObjectKey(*obj.last.key)
        stored = store.get(key)
        if stored is None:
            continue
        name = f"{key.namespace}/{key.name}" if key.namespace else key.name
        label = f"{key.kind} {name}"
        for problem in update_problems(key.kind, stored.body, obj.last.body):
            lines.append(f"{obj.last.place} {label}: {problem.render()}")
    return lines


def _check_superseded_versions(store: ResourceStore, objects: Sequence[FinalObject]) -> None:
    """A superseded copy that names a resourceVersion still asserts it: as the store checks
    the copy it writes, raise Conflict if the stored version is another (kubectl would
    have refused that document). A copy identical to the stored object asserts nothing,
    as for the store."""
    for obj in objects:
        for copy in obj.superseded:
            expected = expected_version(copy.body)
            stored = store.get(ObjectKey(*copy.key)) if expected is not None else None
            if stored is None or same_content(stored.body, copy.body):
                continue
            if expected != str(stored.resource_version):
                raise Conflict(
                    f"{stored.key}: the object has been modified (resourceVersion {expected} "
                    f"given at {copy.place}, {stored.resource_version} stored); get it again "
                    "and reapply"
                )


def _result(key: ObjectKey, body: dict[str, Any], verdict: str) -> dict[str, Any]:
    return {
        "apiVersion": str(body.get("apiVersion", "")),
        "kind": key.kind,
        "namespace": key.namespace,
        "name": key.name,
        "result": verdict,
    }


def _keys(raw: Any) -> list[ObjectKey]:
    if not isinstance(raw, list) or not all(
        isinstance(k, list) and len(k) == 3 and all(isinstance(p, str) for p in k) for k in raw
    ):
        raise _RequestError(400, ['"keys" must be a list of [kind, namespace, name]'])
    return [ObjectKey(*k) for k in raw]


def _decode_object(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _RequestError(400, [f"request body is not JSON: {exc}"]) from exc
    if not isinstance(payload, dict):
        raise _RequestError(400, ["request body must be a JSON object"])
    return payload


def _optional(payload: dict[str, Any], name: str, kind: type[T], default: T) -> T:
    value = payload.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise _RequestError(400, [f'"{name}" must be a {kind.__name__}'])
    return value


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into `{"errors": [...]}` so clients have one error shape."""
    try:
        return await handler(request)
    except _RequestError as exc:
        return web.json_response({"errors": exc.errors}, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = f"{request.method} {request.path}: {exc.reason}"
        return web.json_response({"errors": [message]}, status=exc.status)
    except Exception as exc:
        logger.exception("api internal_error method=%s path=%s", request.method, request.path)
        return web.json_response(
            {"errors": [f"internal error in isthmusd: {type(exc).__name__}: {exc}"]}, status=500
        )


def _log(event: str, **fields: object) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", " ".join(["api", event, *(f"{k}={v}" for k, v in fields.items())]))
