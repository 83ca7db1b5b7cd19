"""The image hierarchy: base layer -> s6 layer -> service images (`rconfd-py image base|build|
service`).

Every generated Containerfile lints (hadolint, error level) and parses; the default tags chain
the levels' FROM lines, also when rebased on another Alpine release; options appear exactly when
asked; a service's run/finish scripts are execline and behave, run with stubbed s6 commands; its
rconfd config passes `rconfd-py check`.

The chain built and run under s6-overlay's real /init: test_real_init.py.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from cli import rconfd
from helpers import require_binaries
from test_image import (
    ROOT,
    check_structure,
    context,
    instructions,
    lint,
    one_error_line,
    wheel,
)

from rconfd_py import errors
from rconfd_py.image import base as base_layer
from rconfd_py.image import scripts, service
from rconfd_py.image.layers import (
    DEFAULT_BASE_TAG,
    DEFAULT_S6_TAG,
    S6_OVERLAY,
    alpine_release,
)

__all__ = ["context", "wheel"]  # module fixtures shared with test_image (the wheel, built once)

EXAMPLE = ROOT / "templates" / "examples" / "s6" / "myservice"
EXAMPLE_EXEC = "/usr/bin/myservice --config /etc/myservice/myservice.conf"
KEY = "org-5f1a2b3c.rsa.pub"


def froms(text: str) -> list[str]:
    """The FROM images with ARG defaults resolved."""
    cmds = instructions(text)
    args = dict(c.value[0].split("=", 1) for c in cmds if c.cmd == "ARG" and "=" in c.value[0])
    return [args.get(c.value[0][2:-1], c.value[0]) if c.value[0].startswith("${") else c.value[0]
            for c in cmds if c.cmd == "FROM"]


def dry_run(*args: str | Path, env: dict | None = None) -> tuple[Path, str, str]:
    """`rconfd-py image ARGS --dry-run --engine podman`: (context, tag, its Containerfile)."""
    r = rconfd("image", *args, "--dry-run", "--builder", "podman", env=env, timeout=300)
    assert r.rc == 0, r.err
    ctx = Path(r.out.splitlines()[0].removeprefix("# context: "))
    argv = shlex.split(r.out.splitlines()[1])
    assert argv[1:3] == ["build", "--tag"] and argv[-1] == str(ctx)
    return ctx, argv[3], (ctx / "Containerfile").read_text()


# -- the base layer ------------------------------------------------------------------------------


@pytest.mark.parametrize("repo,mimalloc,large", [
    (False, False, False), (True, False, False), (False, True, False), (False, True, True),
    (True, True, True),
])
def test_base_layer_options_appear_exactly_when_asked(tmp_path: Path, repo, mimalloc, large):
    (tmp_path / KEY).write_text("-----BEGIN PUBLIC KEY-----\n")
    args = ["base", "--context", tmp_path / "ctx"]
    if repo:
        args += ["--apk-repository", "https://apk.example.com/v3.20/main",
                 "--apk-key", tmp_path / KEY]
    args += ["--mimalloc"] * mimalloc + ["--large-pages"] * large
    ctx, tag, text = dry_run(*args)
    lint(text)
    cmds = instructions(text)
    assert (cmds[0].cmd, cmds[0].value) == ("ARG", ("BASE=alpine:3.20",))
    assert froms(text) == ["alpine:3.20"]
    assert tag == "localhost/rconfd-base:alpine-3.20" + ("-mimalloc" if mimalloc else "")
    copies = [c.value for c in cmds if c.cmd == "COPY"]
    runs = [c.value[0] for c in cmds if c.cmd == "RUN"]
    env = {k: v for c in cmds if c.cmd == "ENV" for k, v in zip(c.value[::2], c.value[1::2])}
    assert (copies == [(f"apk-keys/{KEY}", f"/etc/apk/keys/{KEY}")]) is repo
    assert any("https://apk.example.com/v3.20/main" in r and "/etc/apk/repositories" in r
               for r in runs) is repo
    assert ((ctx / "apk-keys" / KEY).read_text() == "-----BEGIN PUBLIC KEY-----\n"
            if repo else not (ctx / "apk-keys").exists())
    assert any("apk add --no-cache mimalloc2" in r for r in runs) is mimalloc
    assert any("/proc/self/maps" in r for r in runs) is mimalloc  # the preload sanity check
    assert env.get("LD_PRELOAD") == ("/usr/lib/libmimalloc.so.2" if mimalloc else None)
    assert env.get("MIMALLOC_LARGE_OS_PAGES") == ("1" if large else None)
    if repo:  # first in the list: the organisation's packages win
        (trust,) = [r for r in runs if "/etc/apk/repositories" in r]
        assert trust.index("printf") < trust.index("cat /etc/apk/repositories")


def test_base_layer_repository_line_is_prepended(tmp_path: Path):
    """The RUN that trusts the repository, run by sh on a stand-in repositories file."""
    text = base_layer.generate(repository="https://apk.example.com/main", key=KEY)
    (run,) = [c.value[0] for c in instructions(text) if c.cmd == "RUN"]
    repos = tmp_path / "repositories"
    repos.write_text("https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n")
    script = (run.replace("/tmp/repositories", str(tmp_path / "new"))
              .replace("/etc/apk/repositories", str(repos)))
    subprocess.run(["sh", "-c", script], check=True)
    assert repos.read_text().splitlines() == [
        "https://apk.example.com/main", "https://dl-cdn.alpinelinux.org/alpine/v3.20/main"]


@pytest.mark.parametrize("args,needles", [
    (["--large-pages"], ["--large-pages needs --mimalloc"]),
    (["--apk-repository", "https://apk.example.com"], ["go together"]),
    (["--apk-repository", "https://a b", "--apk-key", "{key}"], ["bad URL"]),
    (["--apk-repository", "https://apk.example.com", "--apk-key", "/nonexistent.pub"],
     ["no such file"]),
    (["--base", "alpine 3.20"], ["--base", "bad base image"]),
    (["--base", "debian:12"], ["--from debian:12 is a debian image", "pass --distro debian"]),
    (["--base", "registry.example.com/os:7"], ["not an alpine:X.Y image", "pass --tag"]),
])
def test_base_layer_usage_errors_exit_2(tmp_path: Path, args, needles):
    (tmp_path / KEY).write_text("k")
    args = [str(a).format(key=tmp_path / KEY) for a in args]
    r = rconfd("image", "base", *args, "--dry-run", "--builder", "podman", "--context",
               tmp_path / "ctx")
    one_error_line(r, errors.EXIT_CONFIG, *needles)


# -- the chain --------------------------------------------------------------------------------------


def test_default_tags_chain_the_levels(tmp_path: Path, wheel: Path):
    _, base_tag, _ = dry_run("base", "--context", tmp_path / "base")
    _, s6_tag, s6_text = dry_run("build", "--context", tmp_path / "s6", "--wheel", wheel)
    _, svc_tag, svc_text = dry_run("service", "myservice", "--exec", EXAMPLE_EXEC,
                                   "--context", tmp_path / "svc")
    assert base_tag == DEFAULT_BASE_TAG == "localhost/rconfd-base:alpine-3.20"
    assert froms(s6_text) == [base_tag]
    assert s6_tag == DEFAULT_S6_TAG == f"localhost/s6-overlay:{S6_OVERLAY['3.20']}"
    check_structure(s6_text, multi_stage=False, base=base_tag)
    assert froms(svc_text) == [s6_tag] and svc_tag == "localhost/myservice:latest"


def test_rebasing_is_one_flag_at_the_bottom(tmp_path: Path, wheel: Path):
    _, base_tag, base_text = dry_run("base", "--base", "alpine:3.21", "--mimalloc",
                                     "--context", tmp_path / "base")
    assert froms(base_text) == ["alpine:3.21"]
    assert base_tag == "localhost/rconfd-base:alpine-3.21-mimalloc"
    _, s6_tag, s6_text = dry_run("build", "--from", base_tag, "--context", tmp_path / "s6",
                                 "--wheel", wheel)
    check_structure(s6_text, multi_stage=False, base=base_tag, s6_overlay="3.2.0.2")
    assert s6_tag == "localhost/s6-overlay:3.2.0.2"
    _, _, svc_text = dry_run("service", "myservice", "--exec", EXAMPLE_EXEC, "--from", s6_tag,
                             "--context", tmp_path / "svc")
    assert froms(svc_text) == [s6_tag]
    # a plain Alpine s6 layer, no base layer (the single image as before), and an explicit pin
    _, tag, text = dry_run("build", "--base", "alpine:3.20", "--context", tmp_path / "plain",
                           "--wheel", wheel)
    assert froms(text) == ["alpine:3.20"] and tag == DEFAULT_S6_TAG
    _, tag, text = dry_run("build", "--from", "registry.example.com/ops/base:2024",
                           "--s6-overlay", "3.2.0.3", "--tag", "localhost/s6:x",
                           "--context", tmp_path / "custom", "--wheel", wheel)
    check_structure(text, multi_stage=False, base="registry.example.com/ops/base:2024",
                    s6_overlay="3.2.0.3")


@pytest.mark.parametrize("ref,release", [
    ("alpine:3.20", "3.20"), ("docker.io/library/alpine:3.21.3", "3.21"),
    ("localhost/rconfd-base:alpine-3.22-mimalloc", "3.22"), ("alpine:latest", None),
    ("debian:12", None), ("localhost/notalpine-3.20:x", None),
])
def test_alpine_release_is_read_from_the_image_name(ref, release):
    assert alpine_release(ref) == release


# -- service images -------------------------------------------------------------------------------


@pytest.fixture
def example_service(tmp_path: Path) -> Path:
    """`rconfd-py image service` with every option, on the shipped example service."""
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "app.py").chmod(0o755)
    (tmp_path / "share").mkdir()
    (tmp_path / "share" / "data.txt").write_text("data")
    ctx, tag, _ = dry_run(
        "service", "myservice", "--exec", EXAMPLE_EXEC, "--user", "nobody",
        "--package", "curl", "--package", "py3-requests",
        "--copy", f"{tmp_path / 'app.py'}:/usr/local/bin/app",
        "--copy", f"{tmp_path / 'share'}:/usr/share/myservice/", "--critical",
        "--rconfd-config", EXAMPLE / "rconfd.json", "--template", EXAMPLE / "myservice.jsonnet",
        "--tag", "registry.example.com/myservice:1", "--context", tmp_path / "ctx")
    assert tag == "registry.example.com/myservice:1"
    return ctx


def test_service_context_lints_and_holds_the_service(example_service: Path):
    ctx = example_service
    text = (ctx / "Containerfile").read_text()
    lint(text)
    cmds = instructions(text)
    assert froms(text) == [DEFAULT_S6_TAG]
    runs = [c.value[0] for c in cmds if c.cmd == "RUN"]
    assert "apk add --no-cache curl py3-requests" in runs[0]
    assert any(r.startswith("id nobody ") and "adduser -S" in r for r in runs)
    assert any("test -x /usr/bin/myservice" in r and "s6-setuidgid" in r for r in runs)
    copies = [(c.value[0], c.value[-1]) for c in cmds if c.cmd == "COPY"]
    assert copies == [("files/0/app.py", "/usr/local/bin/app"),
                      ("files/1/share/", "/usr/share/myservice/"),
                      ("services.d/myservice/", "/etc/services.d/myservice/"),
                      ("rconfd/", "/etc/rconfd/")]
    assert os.access(ctx / "files/0/app.py", os.X_OK)
    assert (ctx / "files/1/share/data.txt").read_text() == "data"
    svc = ctx / "services.d" / "myservice"
    assert sorted(p.name for p in svc.iterdir()) == ["finish", "run"]
    assert all(os.access(p, os.X_OK) for p in svc.iterdir())
    assert (svc / "run").read_text().startswith("#!/usr/bin/execlineb -P\n")
    assert (svc / "finish").read_text().startswith("#!/usr/bin/execlineb -S2\n")
    config = json.loads((ctx / "rconfd" / "myservice.json").read_text())
    example = json.loads((EXAMPLE / "rconfd.json").read_text())
    assert config == example  # the example already HUPs /run/service/myservice
    assert ((ctx / "rconfd" / "myservice.jsonnet").read_bytes()
            == (EXAMPLE / "myservice.jsonnet").read_bytes())
    assert sorted(p.name for p in ctx.iterdir()) == ["Containerfile", "files", "rconfd",
                                                     "services.d"]


def test_service_rconfd_config_passes_check(example_service: Path):
    r = rconfd("check", "-d", example_service / "rconfd", "-j", ROOT / "templates" / "lib",
               env={"VAULT_ROLE": "myservice"})
    assert r.rc == 0, r.err


def test_service_config_gets_the_reload_it_lacks(tmp_path: Path):
    (tmp_path / "a.jsonnet").write_text("{}")
    (tmp_path / "b.jsonnet").write_text("{}")
    (tmp_path / "cfg.json").write_text(json.dumps({
        "a.jsonnet": {"dir": "/etc/x"},
        "b.jsonnet": {"dir": "/etc/x", "reload": "/run/service/other", "reload_signal": "usr1"},
    }))
    files = service.rconfd_files("x", tmp_path / "cfg.json",
                                 [tmp_path / "a.jsonnet", tmp_path / "b.jsonnet"])
    config = json.loads(files["x.json"])
    assert config["a.jsonnet"]["reload"] == ["/run/service/x"]
    assert config["b.jsonnet"]["reload"] == ["/run/service/other", "/run/service/x"]
    assert config["b.jsonnet"]["reload_signal"] == "usr1"  # the operator's choice is kept
    assert sorted(files) == ["a.jsonnet", "b.jsonnet", "x.json"]


@pytest.mark.parametrize("args,needles", [
    (["Bad Name", "--exec", "/bin/true"], ["bad service name"]),
    (["rconfd", "--exec", "/bin/true"], ["rconfd is the s6 layer's own service"]),
    (["x", "--exec", "true"], ["--exec", "absolute path"]),
    (["x", "--exec", "/bin/true", "--user", "Root User"], ["--user", "bad user name"]),
    (["x", "--exec", "/bin/true", "--config", "etc/x.conf"], ["--config", "absolute"]),
    (["x", "--exec", "/bin/true", "--package", "curl; rm -rf /"], ["--package", "bad package"]),
    (["x", "--exec", "/bin/true", "--copy", "/etc/hostname"], ["--copy", "SRC:DEST"]),
    (["x", "--exec", "/bin/true", "--copy", "/nonexistent:/x"], ["does not exist"]),
    (["x", "--exec", "/bin/true", "--template", "{example}/myservice.jsonnet"],
     ["--template needs --rconfd-config"]),
    (["x", "--exec", "/bin/true", "--rconfd-config", "{example}/rconfd.json"],
     ["names myservice.jsonnet", "--template"]),
    (["x", "--exec", "/bin/true", "--rconfd-config", "{example}/rconfd.json", "--template",
      "{example}/myservice.jsonnet", "--template", "{root}/templates/examples/app.jsonnet"],
     ["--template app.jsonnet: not in"]),
    (["x", "--exec", "/bin/true", "--rconfd-config", "{example}/run"], ["--rconfd-config"]),
    (["x", "--exec", "/bin/true", "--from", "a b"], ["--from", "bad base image"]),
])
def test_service_usage_errors_exit_2(tmp_path: Path, args, needles):
    args = [a.format(example=EXAMPLE, root=ROOT) for a in args]
    r = rconfd("image", "service", *args, "--dry-run", "--builder", "podman", "--context",
               tmp_path / "ctx")
    one_error_line(r, errors.EXIT_CONFIG, *needles)


# -- the generated s6 scripts, run with stubbed s6 commands ----------------------------------------


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def stub(path: Path, body: str) -> Path:
    return executable(path, "#!/bin/sh\n" + body)


@pytest.fixture
def stubbed(tmp_path: Path):
    """A service context whose run script execs ``app`` (a path with a space, tricky args), and
    s6-svwait / s6-setuidgid / with-contenv stand-ins logging to ``log``."""
    require_binaries("execlineb")  # Debian's finds its other programs in /usr/lib/execline/bin
    log = tmp_path / "log"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub(bindir / "s6-svwait", f'echo "s6-svwait $*" >> {log}\nexit "${{SVWAIT_RC:-0}}"\n')
    stub(bindir / "with-contenv", f'echo with-contenv >> {log}\nexec "$@"\n')
    stub(bindir / "s6-setuidgid", f'echo "s6-setuidgid $1" >> {log}\nshift\nexec "$@"\n')
    app = stub(tmp_path / "my app", f'echo "app LD_PRELOAD=$LD_PRELOAD" >> {log}\n'
                                    f"printf '%s\\n' \"$@\" > {tmp_path / 'args'}\n")
    argv = [str(app), "--name", "a b", "$HOME", 'q"q', "{", "}", "back\\slash", "#x", "", "t\tb"]
    conf = tmp_path / "etc x" / "app.conf"
    ctx, _, _ = dry_run("service", "app", "--exec", shlex.join(argv), "--config", conf,
                        "--user", "nobody", "--critical", "--context", tmp_path / "ctx")
    return ctx / "services.d" / "app", log, bindir, argv, conf


def run_script(script: Path, bindir: Path, *args: str, **env: str):
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=20,
                          env={"PATH": f"{bindir}:/usr/bin:/bin", **env}, check=False)


def test_run_waits_for_rconfd_then_for_the_config_then_execs(stubbed):
    svc, log, bindir, argv, conf = stubbed
    # rconfd not up (no supervisor yet): exit 0 (not a failure for ./finish), nothing started
    r = run_script(svc / "run", bindir, SVWAIT_RC="111")
    assert r.returncode == 0, r.stderr
    assert log.read_text() == "s6-svwait -U /run/service/rconfd\n"
    # rconfd ready, the config not there: say so, exit 0, nothing started
    log.unlink()
    r = run_script(svc / "run", bindir)
    assert r.returncode == 0 and f"app: {conf} is missing, retrying" in r.stderr
    assert log.read_text() == "s6-svwait -U /run/service/rconfd\n"
    # both: exec the command with the container's environment, as the user, argv intact
    log.unlink()
    conf.parent.mkdir()
    conf.write_text("x")
    r = run_script(svc / "run", bindir, LD_PRELOAD="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "app: starting\n"
    assert log.read_text().splitlines() == ["s6-svwait -U /run/service/rconfd", "with-contenv",
                                            "s6-setuidgid nobody", "app LD_PRELOAD="]
    assert (log.parent / "args").read_text().split("\n")[:-1] == argv[1:]


@pytest.mark.parametrize("code,halts", [("0", False), ("256", False), ("1", True),
                                        ("3", True), ("111", True)])
def test_finish_halts_on_failures_only_with_the_exit_code(stubbed, tmp_path: Path, code, halts):
    svc, _, bindir, _, _ = stubbed
    marker, exitcode = tmp_path / "halted", tmp_path / "exitcode"
    halt = stub(tmp_path / "halt", f"touch {marker}\n")
    text = (svc / "finish").read_text()
    finish = executable(tmp_path / "finish", text.replace(scripts.HALT, str(halt))
                        .replace(scripts.EXITCODE, str(exitcode)))
    r = run_script(finish, bindir, code, "15" if code == "256" else "0")
    assert r.returncode == 0, r.stderr
    assert marker.exists() is halts
    assert (exitcode.read_text() if halts else None) == (f"{code}\n" if halts else None)
    assert (f"app: exited {code}: halting the container" in r.stderr) is halts


def test_run_follows_the_example_service_pattern():
    """The generated run script does what templates/examples/s6/myservice/run does, plus
    with-contenv (LD_PRELOAD) and exiting 0 while it waits."""
    def code(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]

    example = code((EXAMPLE / "run").read_text())
    run = code(scripts.run_script("myservice", shlex.split(EXAMPLE_EXEC), user="nobody",
                                  config="/etc/myservice/myservice.conf"))
    assert example[0] == "if { s6-svwait -U /run/service/rconfd }"
    assert run[0] == "if -t { s6-svwait -U /run/service/rconfd }"
    assert example[1] == "if { eltest -f /etc/myservice/myservice.conf }"
    assert run[1] == "ifelse -n { eltest -f /etc/myservice/myservice.conf }"
    assert run[3:] == [example[2], "with-contenv", *example[3:]]
