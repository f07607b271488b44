"""Apply semantics that match kubectl, through the real CLI and a real isthmusd:

- the same object twice in one apply is applied in order, the last copy wins, in one
  transaction (one write per object; a bad copy refuses everything);
- `get -o yaml|json` shows the apiVersion the command named, else the kind's preferred one;
- `isthmus validate` and `apply --dry-run` work with no isthmusd (and no mesh home).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from isthmus.testing.daemon import DaemonProcess

ISTHMUS = str(Path(sys.executable).parent / "isthmus")

OFFLINE_NOTICE = (
    "validated offline with apply's checks; not compared with the objects in the mesh, "
    "so whether each would be created, configured or unchanged is not known"
)


def vs(
    namespace: str,
    subset: str,
    *,
    name: str = "reviews",
    api_version: str = "networking.istio.io/v1",
) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: {api_version}
        kind: VirtualService
        metadata:
          name: {name}
          namespace: {namespace}
        spec:
          hosts: [reviews]
          http:
          - route:
            - destination: {{host: reviews, subset: {subset}}}
        """
    )


def bad(text: str) -> str:
    """The document with a weight out of range (a semantic error)."""
    return text.replace("subset: v1}", "subset: v1}\n      weight: 101")


AUTHZ = """\
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: NS}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/admin"]}
"""

TELEMETRY = """\
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: mesh-default, namespace: NS}
spec:
  tracing:
  - randomSamplingPercentage: 10
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with DaemonProcess(tmp_path_factory.mktemp("sem") / "home") as d:
        yield d


def run(
    *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ISTHMUS, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=None if env is None else dict(env),
    )


def cli(
    daemon: DaemonProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run("--home", str(daemon.home), *args, stdin=stdin)


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


def revision(daemon: DaemonProcess) -> int:
    return int(daemon.client.get("/v1/healthz").json()["revision"])


def stored(daemon: DaemonProcess, kind: str, namespace: str, name: str) -> list[dict[str, Any]]:
    params = {"kind": kind, "namespace": namespace, "name": name}
    items: list[dict[str, Any]] = daemon.client.get("/v1/objects", params=params).json()["items"]
    return items


def subset_of(body: dict[str, Any]) -> str:
    return str(body["spec"]["http"][0]["route"][0]["destination"]["subset"])


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --- the same object twice: the last wins, in one transaction ------------------------------


def test_the_last_copy_is_stored_once_and_reported_once(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    ns = "dup-last"
    path = write(
        tmp_path / "app.yaml",
        vs(ns, "v1") + "---\n" + vs(ns, "v1", name="ratings") + "---\n" + vs(ns, "v2"),
    )
    before = revision(daemon)

    result = cli(daemon, "apply", "-f", path)

    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [
        "virtualservice.networking.istio.io/reviews created "
        f"(the last of 2 copies wins: {path}:23)",
        "virtualservice.networking.istio.io/ratings created",
    ]
    (reviews,) = stored(daemon, "VirtualService", ns, "reviews")
    assert subset_of(reviews) == "v2"
    # One write per object: the first copy was never stored (no watcher saw it), and the
    # object was created in the place of its first copy, before ratings.
    assert revision(daemon) == before + 2
    assert reviews["metadata"]["resourceVersion"] == str(before + 1)

    again = cli(daemon, "apply", "-f", path)
    assert lines(again.stdout)[0] == (
        "virtualservice.networking.istio.io/reviews unchanged "
        f"(the last of 2 copies wins: {path}:23)"
    )
    assert revision(daemon) == before + 2


def test_an_update_and_its_correction_in_one_apply_configure_once(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    ns = "dup-configure"
    assert cli(daemon, "apply", "-f", "-", stdin=vs(ns, "v1")).returncode == 0
    before = revision(daemon)

    result = cli(daemon, "apply", "-f", "-", stdin=vs(ns, "v3") + "---\n" + vs(ns, "v2"))

    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [
        "virtualservice.networking.istio.io/reviews configured "
        "(the last of 2 copies wins: <stdin>:12)"
    ]
    assert subset_of(stored(daemon, "VirtualService", ns, "reviews")[0]) == "v2"
    assert revision(daemon) == before + 1


def test_copies_in_two_files_the_later_file_wins(daemon: DaemonProcess, tmp_path: Path) -> None:
    ns = "dup-files"
    first = write(tmp_path / "a.yaml", vs(ns, "v1"))
    second = write(tmp_path / "b.yaml", vs(ns, "v2"))

    result = cli(daemon, "apply", "-f", first, "-f", second)

    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [
        "virtualservice.networking.istio.io/reviews created "
        f"(the last of 2 copies wins: {second}:1)"
    ]
    assert subset_of(stored(daemon, "VirtualService", ns, "reviews")[0]) == "v2"


@pytest.mark.parametrize("bad_copy", ["first", "last"])
def test_a_bad_copy_refuses_everything_and_changes_nothing(
    daemon: DaemonProcess, tmp_path: Path, bad_copy: str
) -> None:
    ns = f"dup-bad-{bad_copy}"
    assert cli(daemon, "apply", "-f", "-", stdin=vs(ns, "v0")).returncode == 0
    before = revision(daemon)
    copies = [vs(ns, "v1"), vs(ns, "v1")]
    copies[0 if bad_copy == "first" else 1] = bad(copies[0])
    text = vs(ns, "v1", name="ratings") + "---\n" + "---\n".join(copies)
    path = write(tmp_path / "app.yaml", text)

    result = cli(daemon, "apply", "-f", path)

    assert result.returncode == 1
    assert result.stdout == ""
    line = 12 if bad_copy == "first" else 23
    assert lines(result.stderr) == [
        f"{path}:{line} VirtualService {ns}/reviews: spec.http[0].route[0].weight: "
        "must be between 0 and 100"
    ]
    assert revision(daemon) == before
    assert subset_of(stored(daemon, "VirtualService", ns, "reviews")[0]) == "v0"
    assert stored(daemon, "VirtualService", ns, "ratings") == []


def test_a_superseded_copy_with_a_stale_resource_version_is_a_conflict(
    daemon: DaemonProcess,
) -> None:
    ns = "dup-conflict"
    assert cli(daemon, "apply", "-f", "-", stdin=vs(ns, "v1")).returncode == 0
    (current,) = stored(daemon, "VirtualService", ns, "reviews")
    stale = str(int(current["metadata"]["resourceVersion"]) - 1)
    before = revision(daemon)
    superseded = vs(ns, "v2").replace(
        "  name: reviews\n", f"  name: reviews\n  resourceVersion: '{stale}'\n"
    )
    text = superseded + "---\n" + vs(ns, "v3")

    result = cli(daemon, "apply", "-f", "-", stdin=text)

    assert result.returncode == 1
    assert lines(result.stderr) == [
        f"VirtualService {ns}/reviews: the object has been modified (resourceVersion {stale} "
        f"given at <stdin>:1, {current['metadata']['resourceVersion']} stored); get it again "
        "and reapply"
    ]
    assert revision(daemon) == before


def test_dry_run_against_isthmusd_reports_copies_and_changes_nothing(
    daemon: DaemonProcess,
) -> None:
    ns = "dup-dry"
    before = revision(daemon)

    result = cli(
        daemon, "apply", "--dry-run", "-f", "-", stdin=vs(ns, "v1") + "---\n" + vs(ns, "v2")
    )

    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [
        "virtualservice.networking.istio.io/reviews created "
        "(dry run; the last of 2 copies wins: <stdin>:12)"
    ]
    assert result.stderr == ""
    assert revision(daemon) == before


# --- get shows the apiVersion asked for, else the preferred one ---------------------------


@pytest.fixture(scope="module")
def versioned(daemon: DaemonProcess) -> str:
    """Objects applied with older versions than their kinds prefer."""
    ns = "versions"
    text = "---\n".join(
        [
            vs(ns, "v1", api_version="networking.istio.io/v1alpha3"),
            vs(ns, "v1", name="ratings", api_version="networking.istio.io/v1beta1"),
            AUTHZ.replace("NS", ns),
            TELEMETRY.replace("NS", ns),
        ]
    )
    result = run("--home", str(daemon.home), "apply", "-f", "-", stdin=text)
    assert result.returncode == 0, result.stderr
    return ns


@pytest.mark.parametrize(
    ("resource", "shown"),
    [
        ("vs", "networking.istio.io/v1"),
        ("virtualservices", "networking.istio.io/v1"),
        ("VirtualService", "networking.istio.io/v1"),
        ("virtualservices.networking.istio.io", "networking.istio.io/v1"),
        ("virtualservices.v1.networking.istio.io", "networking.istio.io/v1"),
        ("virtualservices.v1beta1.networking.istio.io", "networking.istio.io/v1beta1"),
        ("virtualservices.v1alpha3.networking.istio.io", "networking.istio.io/v1alpha3"),
        ("vs.v1beta1.networking.istio.io", "networking.istio.io/v1beta1"),
    ],
)
@pytest.mark.parametrize("output", ["yaml", "json"])
def test_get_shows_the_version_named_else_the_preferred_one(
    daemon: DaemonProcess, versioned: str, resource: str, shown: str, output: str
) -> None:
    result = cli(daemon, "get", resource, "reviews", "-n", versioned, "-o", output)

    assert result.returncode == 0, result.stderr
    body = yaml.safe_load(result.stdout) if output == "yaml" else json.loads(result.stdout)
    assert body["apiVersion"] == shown
    assert next(iter(body)) == "apiVersion"  # still the first key, as applied
    assert body["kind"] == "VirtualService"
    assert subset_of(body) == "v1"
    # The stored object keeps the version it was applied with.
    (kept,) = stored(daemon, "VirtualService", versioned, "reviews")
    assert kept["apiVersion"] == "networking.istio.io/v1alpha3"


def test_get_list_shows_every_item_in_one_version(daemon: DaemonProcess, versioned: str) -> None:
    preferred = json.loads(cli(daemon, "get", "vs", "-n", versioned, "-o", "json").stdout)
    named = yaml.safe_load(
        cli(
            daemon,
            "get",
            "virtualservices.v1beta1.networking.istio.io",
            "-n",
            versioned,
            "-o",
            "yaml",
        ).stdout
    )

    assert preferred["kind"] == named["kind"] == "List"
    assert [i["apiVersion"] for i in preferred["items"]] == ["networking.istio.io/v1"] * 2
    assert [i["apiVersion"] for i in named["items"]] == ["networking.istio.io/v1beta1"] * 2


@pytest.mark.parametrize(
    ("resource", "name", "shown"),
    [
        ("ap", "deny-admin", "security.istio.io/v1"),
        (
            "authorizationpolicies.v1beta1.security.istio.io",
            "deny-admin",
            "security.istio.io/v1beta1",
        ),
        ("telemetry", "mesh-default", "telemetry.istio.io/v1"),
        ("telemetries.v1alpha1.telemetry.istio.io", "mesh-default", "telemetry.istio.io/v1alpha1"),
    ],
)
def test_security_and_telemetry_kinds_prefer_v1(
    daemon: DaemonProcess, versioned: str, resource: str, name: str, shown: str
) -> None:
    result = cli(daemon, "get", resource, name, "-n", versioned, "-o", "yaml")

    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["apiVersion"] == shown


def test_a_version_the_kind_does_not_serve_is_one_line(
    daemon: DaemonProcess, versioned: str
) -> None:
    result = cli(
        daemon, "get", "virtualservices.v2.networking.istio.io", "reviews", "-n", versioned
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert lines(result.stderr) == [
        "error: kind VirtualService is not served by apiVersion networking.istio.io/v2 "
        "(virtualservices.v2.networking.istio.io); it serves networking.istio.io/v1, "
        "networking.istio.io/v1beta1, networking.istio.io/v1alpha3"
    ]


def test_a_kind_named_with_another_group_is_unknown(daemon: DaemonProcess, versioned: str) -> None:
    result = cli(daemon, "get", "services.networking.istio.io", "-n", versioned)

    assert result.returncode == 1
    (line,) = lines(result.stderr)
    assert line.startswith('error: unknown resource type "services.networking.istio.io"')


# --- no isthmusd: validate, and apply --dry-run ---------------------------------------------


def no_home_env(tmp_path: Path) -> dict[str, str]:
    """A fresh machine or CI job: no $ISTHMUS_HOME, and a $HOME with no ~/.isthmus."""
    env = {k: v for k, v in os.environ.items() if k != "ISTHMUS_HOME"}
    env["HOME"] = str(tmp_path / "fresh-user")
    return env


def test_validate_with_no_mesh_home_at_all(tmp_path: Path) -> None:
    env = no_home_env(tmp_path)
    path = write(
        tmp_path / "app.yaml",
        vs("prod", "v1") + "---\n" + vs("prod", "v2") + "---\n" + AUTHZ.replace("NS", "prod"),
    )

    result = run("validate", "-f", path, env=env)

    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [
        f"virtualservice.networking.istio.io/reviews valid (the last of 2 copies wins: {path}:12)",
        "authorizationpolicy.security.istio.io/deny-admin valid",
    ]
    # The same warning as apply gives, under the default path normalization.
    (warning,) = lines(result.stderr)
    assert warning.startswith(
        "Warning: AuthorizationPolicy prod/deny-admin: DENY rule on paths under "
        "pathNormalization BASE"
    )
    assert not (tmp_path / "fresh-user").exists()  # nothing was created


def test_validate_reports_every_problem_and_exits_1(tmp_path: Path) -> None:
    env = no_home_env(tmp_path)
    one = write(tmp_path / "one.yaml", bad(vs("prod", "v1")) + "---\n" + vs("prod", "v2"))
    two = write(tmp_path / "two.yaml", "apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n")

    result = run("validate", "-f", one, "-f", two, env=env)

    assert result.returncode == 1
    assert result.stdout == ""
    errors = lines(result.stderr)
    assert errors[0] == (
        f"{one}:1 VirtualService prod/reviews: spec.http[0].route[0].weight: "
        "must be between 0 and 100"
    )
    assert errors[1].startswith(f"{two}:1 Widget default/w: unknown kind Widget (v1)")
    assert len(errors) == 2


def test_validate_stdin_directory_namespace_and_usage(tmp_path: Path) -> None:
    env = no_home_env(tmp_path)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write(manifests / "a.yaml", vs("prod", "v1", name="alpha").replace("  namespace: prod\n", ""))
    piped = run(
        "validate", "-n", "staging", "-f", "-", "-f", str(manifests), stdin=vs("p", "v1"), env=env
    )
    assert piped.returncode == 0, piped.stderr
    assert lines(piped.stdout) == [
        "virtualservice.networking.istio.io/reviews valid",
        "virtualservice.networking.istio.io/alpha valid",
    ]

    empty = run("validate", "-f", "-", stdin="# nothing\n", env=env)
    assert (empty.returncode, lines(empty.stderr)) == (1, ["error: no objects passed to validate"])
    missing = run("validate", "-f", str(tmp_path / "nope.yaml"), env=env)
    assert missing.returncode == 1
    usage = run("validate", env=env)
    assert usage.returncode == 1
    assert lines(usage.stderr)[0].startswith("error: Missing option '-f'")


def test_dry_run_without_isthmusd_validates_offline(tmp_path: Path) -> None:
    home = tmp_path / "home"  # never created: no isthmusd ever ran here
    path = write(tmp_path / "app.yaml", vs("prod", "v1") + "---\n" + vs("prod", "v2"))

    result = run("--home", str(home), "apply", "--dry-run", "-f", path)

    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [
        "virtualservice.networking.istio.io/reviews valid "
        f"(dry run; the last of 2 copies wins: {path}:12)"
    ]
    assert lines(result.stderr) == [f"isthmus: isthmusd is not running at {home}: {OFFLINE_NOTICE}"]
    assert not home.exists()


def test_dry_run_without_isthmusd_refuses_a_bad_manifest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write(tmp_path / "app.yaml", bad(vs("prod", "v1")))

    result = run("--home", str(home), "apply", "--dry-run", "-f", path)

    assert result.returncode == 1
    assert result.stdout == ""
    assert lines(result.stderr) == [
        f"{path}:1 VirtualService prod/reviews: spec.http[0].route[0].weight: "
        "must be between 0 and 100"
    ]


def test_a_real_apply_without_isthmusd_still_fails(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write(tmp_path / "app.yaml", vs("prod", "v1"))

    result = run("--home", str(home), "apply", "-f", path)

    assert result.returncode == 1
    assert result.stdout == ""
    assert lines(result.stderr) == [
        f"error: isthmusd is not running at {home} "
        f"(start it with `isthmus daemon --home {home}` or `isthmus up`)"
    ]


def test_dry_run_when_isthmusd_does_not_answer_validates_offline(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    # A socket that accepts connections and never answers: a stuck isthmusd.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck:
        stuck.bind(str(home / "isthmusd.sock"))
        stuck.listen(8)
        result = run(
            "--home", str(home), "apply", "--dry-run", "--timeout", "1s", "-f", "-",
            stdin=vs("prod", "v1"),
        )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == ["virtualservice.networking.istio.io/reviews valid (dry run)"]
    assert lines(result.stderr)[-1] == (
        f"isthmus: isthmusd did not answer within 1s: {OFFLINE_NOTICE}"
    )


def test_validate_warns_as_istio_about_an_entry_without_address(tmp_path: Path) -> None:
    env = no_home_env(tmp_path)
    path = write(
        tmp_path / "vm.yaml",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        "metadata: {name: vm-remote, namespace: prod}\n"
        "spec: {network: remote, labels: {app: payments}}\n",
    )

    result = run("validate", "-f", path, env=env)

    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == ["workloadentry.networking.istio.io/vm-remote valid"]
    assert lines(result.stderr) == [
        "Warning: WorkloadEntry prod/vm-remote: address is unset with network 'remote': it is "
        "reachable only through that network's gateway, and isthmus has none, so it gets no "
        "traffic"
    ]
