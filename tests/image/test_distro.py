"""`rconfd-py image ... --distro debian`: the same three levels on Debian (apt-get, useradd,
libmimalloc2.0, s6-overlay from --s6-overlay-from), tags of their own; --distro alpine is the
default and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli import rconfd
from test_image import context, instructions, lint, one_error_line, wheel
from test_image_hierarchy import EXAMPLE, EXAMPLE_EXEC, dry_run, froms
from test_overlay_from import tarball

from rconfd_py import errors
from rconfd_py.image.layers import (
    ALPINE,
    DEBIAN,
    DEFAULT_BASE_TAG,
    DEFAULT_DEBIAN,
    DEFAULT_DEBIAN_BASE_TAG,
    DEFAULT_DEBIAN_S6_TAG,
    DEFAULT_S6_TAG,
)

__all__ = ["context", "wheel"]  # module fixtures shared with test_image (the wheel, built once)


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    return tarball(tmp_path / "s6-overlay-3.1.5.0.tar", "./", "./init",
                   "./package/admin/s6-overlay-3.1.5.0/", "./command/execlineb")


def runs(text: str) -> list[str]:
    return [c.value[0] for c in instructions(text) if c.cmd == "RUN"]


def test_debian_chain_lints_uses_apt_get_and_chains_its_own_tags(tmp_path: Path, wheel: Path,
                                                                 overlay: Path):
    _, base_tag, base_text = dry_run("base", "--distro", "debian", "--mimalloc",
                                     "--context", tmp_path / "base")
    _, s6_tag, s6_text = dry_run("build", "--distro", "debian", "--s6-overlay-from", overlay,
                                 "--wheel", wheel, "--context", tmp_path / "s6")
    _, svc_tag, svc_text = dry_run(
        "service", "myservice", "--distro", "debian", "--exec", EXAMPLE_EXEC,
        "--package", "curl", "--critical", "--rconfd-config", EXAMPLE / "rconfd.json",
        "--template", EXAMPLE / "myservice.jsonnet", "--context", tmp_path / "svc")
    for text in (base_text, s6_text, svc_text):
        lint(text)
        assert all("apk" not in r for r in runs(text)), text
    # the defaults chain base -> s6 layer -> service, apart from Alpine's
    assert froms(base_text) == [DEFAULT_DEBIAN] == ["debian:12-slim"]
    assert base_tag == f"{DEFAULT_DEBIAN_BASE_TAG}-mimalloc" == \
        "localhost/rconfd-base:debian-12-mimalloc"
    assert froms(s6_text) == [DEFAULT_DEBIAN_BASE_TAG]
    assert s6_tag == DEFAULT_DEBIAN_S6_TAG == "localhost/s6-overlay:3.1.5.0-debian"
    assert froms(svc_text) == [s6_tag] and svc_tag == "localhost/myservice:debian"
    assert {base_tag, s6_tag, svc_tag}.isdisjoint(
        {DEFAULT_BASE_TAG, f"{DEFAULT_BASE_TAG}-mimalloc", DEFAULT_S6_TAG,
         "localhost/myservice:latest"})
    # base: libmimalloc2.0 from apt, preloaded by its soname (any multiarch directory)
    (install,) = [r for r in runs(base_text) if "apt-get" in r]
    assert "apt-get install -y --no-install-recommends libmimalloc2.0" in install
    assert "rm -rf /var/lib/apt/lists/*" in install
    env = {c.value[0]: c.value[1] for c in instructions(base_text) if c.cmd == "ENV"}
    assert env == {"LD_PRELOAD": "libmimalloc.so.2"} == {"LD_PRELOAD": DEBIAN.mimalloc_library}
    # s6 layer: s6-overlay ADDed from the tarball, python3 from apt, execlineb linked where the
    # scripts' #! looks for it
    cmds = [(c.cmd, c.value) for c in instructions(s6_text)]
    assert ("ADD", (f"s6-overlay/{overlay.name}", "/")) in cmds
    (python,) = [r for r in runs(s6_text) if "apt-get" in r]
    assert "install -y --no-install-recommends python3 python3-venv ca-certificates" in python
    assert "ln -s /command/execlineb /usr/bin/execlineb" in python
    # service: its packages from apt, its user by useradd
    svc_runs = runs(svc_text)
    assert "apt-get install -y --no-install-recommends curl" in svc_runs[0]
    assert any(r.startswith("id myservice ") and "useradd --system" in r for r in svc_runs)


def test_debian_top_level_containerfile_builds_its_wheel_with_apt(overlay: Path):
    r = rconfd("image", "containerfile", "--distro", "debian", "--s6-overlay-from", overlay)
    assert r.rc == 0, r.err
    lint(r.out)
    assert froms(r.out) == [DEFAULT_DEBIAN] * 2
    assert all("apk" not in run for run in runs(r.out))
    assert any("python3-pip" in run and "apt-get" in run for run in runs(r.out))


@pytest.mark.parametrize("command", [
    ("build", "--dry-run", "--builder", "podman"), ("context",), ("containerfile",),
])
def test_debian_s6_layer_without_s6_overlay_from_is_a_usage_error(tmp_path: Path, wheel: Path,
                                                                 command):
    ctx = tmp_path / "ctx"
    args = ["--context", ctx] if command[0] == "build" else [ctx] if command[0] == "context" \
        else []
    extra = ["--wheel", wheel] if command[0] != "containerfile" else []
    r = rconfd("image", command[0], *args, *command[1:], *extra, "--distro", "debian")
    one_error_line(r, errors.EXIT_CONFIG, "--distro debian", "--s6-overlay-from")
    assert r.out == "" and not ctx.exists()


@pytest.mark.parametrize("args,needles", [
    (("--base", "localhost/debian-base"), ["--base localhost/debian-base", "pass --tag"]),
    (("--apk-repository", "https://apk.example.com/main", "--apk-key", "KEY", "--tag", "x"),
     ["--apk-repository", "--distro debian has no apk"]),
])
def test_debian_base_usage_errors_exit_2(tmp_path: Path, args, needles):
    (tmp_path / "org.rsa.pub").write_text("key")
    args = [str(tmp_path / "org.rsa.pub") if a == "KEY" else a for a in args]
    r = rconfd("image", "base", "--distro", "debian", *args, "--context", tmp_path / "ctx",
               "--dry-run", "--builder", "podman")
    one_error_line(r, errors.EXIT_CONFIG, *needles)
    assert not (tmp_path / "ctx").exists()


@pytest.mark.parametrize("image,distro,named", [("debian:12", None, "debian"),
                                                ("docker.io/debian:bookworm-slim", "alpine", "debian"),
                                                ("alpine:3.20", "debian", "alpine")])
def test_an_image_of_the_other_distro_is_a_usage_error(tmp_path: Path, image, distro, named):
    """Not an apk (or apt-get) step that fails deep inside the build."""
    r = rconfd("image", "base", "--base", image, *(["--distro", distro] if distro else []),
               "--tag", "x", "--context", tmp_path / "ctx", "--dry-run", "--builder", "podman")
    one_error_line(r, errors.EXIT_CONFIG, f"--from {image} is a {named} image",
                   f"pass --distro {named}")
    assert not (tmp_path / "ctx").exists()


def test_alpine_is_the_default_and_unchanged(tmp_path: Path, wheel: Path, overlay: Path):
    """--distro alpine writes byte for byte what no --distro writes, and Alpine's package lines
    are the ones every earlier release wrote."""
    cases = {
        "base": ("base", "--mimalloc", "--large-pages"),
        "build": ("build", "--wheel", wheel),
        "overlay": ("build", "--wheel", wheel, "--s6-overlay-from", overlay),
        "service": ("service", "myservice", "--exec", EXAMPLE_EXEC, "--package", "curl"),
    }
    for name, args in cases.items():
        outputs = []
        for distro in ((), ("--distro", "alpine")):
            ctx = tmp_path / f"{name}-{len(distro)}"
            _, tag, text = dry_run(*args, *distro, "--context", ctx)
            files = sorted((p.relative_to(ctx), p.read_bytes()) for p in ctx.rglob("*")
                           if p.is_file())
            outputs.append((tag, text, files))
        assert outputs[0] == outputs[1], name
    for variant in ((), ("--context",)):
        plain = rconfd("image", "containerfile", *variant)
        assert plain.rc == 0 and rconfd("image", "containerfile", "--distro", "alpine",
                                        *variant).out == plain.out
    assert ALPINE.install.format(packages="curl") == (
        "# hadolint ignore=DL3018\nRUN apk add --no-cache curl")
    assert ALPINE.mimalloc_library == "/usr/lib/libmimalloc.so.2"
    assert ALPINE.s6_packages == """\
# The service scripts start with #!/usr/bin/execlineb (s6 upstream, Debian): link it there if
# the package installs execlineb elsewhere.
# hadolint ignore=DL3018
RUN apk add --no-cache python3 "s6-overlay=~${S6_OVERLAY_VERSION}" s6-portable-utils execline \\
 && if [ ! -e /usr/bin/execlineb ]; then \\
      ln -s "$(PATH="/command:$PATH" command -v execlineb)" /usr/bin/execlineb; \\
    fi"""
    assert ALPINE.python_packages == """\
# The service scripts start with #!/usr/bin/execlineb (s6 upstream, Debian): link it there.
# hadolint ignore=DL3018
RUN apk add --no-cache python3 \\
 && if [ ! -e /usr/bin/execlineb ]; then ln -s /command/execlineb /usr/bin/execlineb; fi"""
