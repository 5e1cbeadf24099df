"""Joining the Ray cluster at ``--address``, or saying in one line why it cannot be joined.

``ray.init(address=...)`` alone is a poor first contact when something is wrong: with nothing
listening at the address it waits for many minutes; with a cluster that uses token authentication
(Ray 2.60's ``ray start --head`` turns it on whenever ``~/.ray/auth_token`` exists, and every local
``ray.init()`` writes that file) it tries 20 times, a second apart, each try writing an
``InvalidAuthToken`` warning from Ray's C++ core straight onto file descriptor 2, then raises a
``ConnectionError`` that does not say why. So ``connect`` first checks that something listens there
(one TCP connection), then asks the cluster's GCS once whether it accepts this process (an
authentication failure comes back at once; a port that is not a GCS's, after Ray's 40 s), and only
then calls ``ray.init``. What Ray writes on stderr meanwhile goes to a temporary file, shown only
when the connection succeeds (so a warning that matters then, such as a version mismatch, is kept).

Token authentication: Ray sends a token to an address it was given only under ``RAY_AUTH_MODE=token``
(it never sends the local token to an explicit address on its own; ``--address auto`` is the one
case where it picks up a local cluster's token by itself), reading it from ``$RAY_AUTH_TOKEN``, the
file named by ``$RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``. We follow Ray there: the error
says how to pass the token; we never turn token mode on for the user.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import UserError

PROBE_TIMEOUT_S = 5.0
TOKEN_PLACES = ("$RAY_AUTH_TOKEN, a file named by $RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token "
                "(`ray get-auth-token` on its head node prints it)")


def host_and_port(address: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (or ``ray://HOST:PORT``, ``[v6]:PORT``) split; None for ``auto`` and other forms."""
    host, sep, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at ``address``."""
    where = host_and_port(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        reason = f"no answer in {PROBE_TIMEOUT_S:g} s" if isinstance(error, TimeoutError) else (
            error.strerror or error.__class__.__name__)
        raise UserError(f"--address {address}: no Ray cluster answers there ({reason}); start one with "
                        f"`ray start --head --port={where[1]}` or correct the address") from None


def _explain(address: str, error: BaseException, mode: str) -> str:
    """The one line for a failed connection, read from the whole chain of Ray's exceptions."""
    chain, seen = [], error
    while seen is not None:
        chain.append(f"{seen.__class__.__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    text = "\n".join(chain)
    if "InvalidAuthToken" in text and mode != "token":
        return (f"--address {address}: the cluster there uses token authentication: run with RAY_AUTH_MODE=token "
                f"and its token in {TOKEN_PLACES}; or start the cluster with RAY_AUTH_MODE=disabled")
    if "InvalidAuthToken" in text:
        return f"--address {address}: the cluster there refuses this token: give it its own token in {TOKEN_PLACES}"
    missing = next((e for e in chain if e.startswith("AuthenticationError: ")), None)
    if missing:     # token mode, but no token here: Ray's first sentence says which place failed
        reason = missing.split(": ", 1)[1].split(". ")[0].rstrip(".")
        return f"--address {address}: {reason}: put the cluster's token in {TOKEN_PLACES}"
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), error.__class__.__name__)
    return f"--address {address}: cannot join the Ray cluster there ({first})"


def _has_token() -> bool:
    """Whether one of the three places Ray reads a token from holds one."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    try:
        return bool(path.read_text().strip())
    except (OSError, UnicodeDecodeError):
        return False


def _ask_once(address: str, mode: str) -> None:
    """One call to the cluster's GCS, so a refused token is known at once rather than after 20 tries.

    Uses Ray's own GCS client (not a public API), so any failure other than the two it explains leaves
    the question to ``ray.init``, which asks again. Skipped in token mode without a token: Ray's client
    then aborts the process, where ``ray.init`` raises an error we can explain.
    """
    if "://" in address or host_and_port(address) is None or (mode == "token" and not _has_token()):
        return
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError, RpcError
    except ImportError:
        return
    try:
        GcsClient(address=address)
    except AuthenticationError:
        raise
    except RpcError as error:
        if "timed out" in str(error).lower():
            raise UserError(f"--address {address}: something listens there, but no Ray cluster answers "
                            f"({str(error).rstrip('.')}); give the address `ray start --head` printed "
                            f"(port 6379 unless --port)") from None
    except Exception:   # noqa: BLE001  (anything else: ray.init decides, and explains)
        return


@contextmanager
def stderr_kept_aside() -> Iterator[Any]:
    """File descriptor 2 into a temporary file: Ray's C++ core writes there, past Python's sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def connect(ray: Any, address: str, **options: Any) -> None:
    """``ray.init(address=address, **options)``, or a ``UserError`` naming the address and what to do."""
    check_reachable(address)
    from ray.exceptions import RayError
    mode = os.environ.get("RAY_AUTH_MODE", "").lower()
    failure = None
    with stderr_kept_aside() as aside:
        try:
            _ask_once(address, mode)
            ray.init(address=address, **options)
        except UserError as error:
            failure = str(error)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError, RayError) as error:
            failure = _explain(address, error, mode)
        aside.seek(0)
        noise = aside.read()
    if failure is not None:
        raise UserError(failure)
    sys.stderr.write(noise.decode(errors="replace"))
