"""The state file (state.py): saved and loaded back whole, and refused, with one warning line
naming the file and the reason (never a value), whenever it cannot be trusted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import captured_log, hostile_user

from rconfd_py import state
from rconfd_py.ledger import Ledger
from rconfd_py.refs import parse_ref
from rconfd_py.secret import Lease, Secret
from rconfd_py.state import StateDir
from rconfd_py.vault import leases
from rconfd_py.vault.auth import Token

VAULT = "http://127.0.0.1:8200"
PASSWORD = "s3cr3t-Passw0rd-value"
TOKEN = "hvs.the-client-token-value"
DB = parse_ref("vault:app,POST,input=plaintext-kwarg:database/creds/mydb")
PKI = parse_ref("vault:app,POST,common_name=x.example.com:pki/issue/example.com")
KV = parse_ref("vault:app:kv/data/static")
ENV = parse_ref("env:str:HOME")


def ledger() -> Ledger:
    led = Ledger()
    led.put_token(Token("app", TOKEN, "acc-1", 20.0, True, 1000.0))
    led.remember(Secret(DB, {"username": "v-user", "password": PASSWORD}, 1000.0,
                        Lease("database/creds/mydb/L1", 10.0, True), 1010.0, "app", "acc-1"),
                 1000.0)
    led.remember(Secret(PKI, {"certificate": "PEM", "expiration": 1030}, 1001.0, None, 1030.0,
                        "app", "acc-1"), 1001.0)
    led.remember(Secret(KV, {"data": {"k": "kv-static-value"}}, 1000.0), 1000.0)
    led.remember(Secret(ENV, "/root", 1000.0), 1000.0)
    return led


def opened(tmp_path: Path, vault: str = VAULT) -> StateDir:
    s = StateDir.open(str(tmp_path / "st"), vault)
    assert s is not None
    return s


def saved_dir(tmp_path: Path) -> Path:
    s = opened(tmp_path)
    assert s.save(ledger(), 1002.0)
    s.close()
    return tmp_path / "st"


def load_warning(tmp_path: Path, vault: str = VAULT) -> tuple[object, str]:
    with captured_log() as out:
        s = opened(tmp_path, vault)
        try:
            loaded = s.load()
        finally:
            s.close()
    return loaded, out.getvalue()


def test_save_and_load_round_trip_keeps_tokens_leases_certificates_and_mints(tmp_path):
    led = ledger()
    led.secrets[DB].expires_at = 1015.0  # renewed since its fetch
    led.secrets[DB].renew = False
    led.tokens["app"].born = 900.0  # logged in before its last renewal
    s = opened(tmp_path)
    assert s.save(led, 1002.0)
    assert not s.save(led, 1003.0)  # nothing changed: nothing written
    s.close()
    d = tmp_path / "st"
    assert (d.stat().st_mode & 0o777, (d / "state.json").stat().st_mode & 0o777) == (0o700, 0o600)
    s = opened(tmp_path)
    loaded = s.load()
    s.close()
    assert loaded.saved_at == 1002.0
    tok = loaded.tokens["app"]
    assert tok.token == led.tokens["app"].token and (tok.asked, tok.born) == (20.0, 900.0)
    assert set(loaded.secrets) == {DB, PKI}  # static secrets are re-read, never saved
    db = loaded.secrets[DB]
    assert db.secret == led.secrets[DB].secret and db.ref.kwargs == DB.kwargs
    assert (db.expires_at, db.renew, db.asked, list(db.mints)) == (1015.0, False, 10.0, [1000.0])
    assert loaded.secrets[PKI].secret.value["expiration"] == 1030


def test_a_change_of_the_ledger_is_saved_again(tmp_path):
    led = ledger()
    s = opened(tmp_path)
    s.save(led, 1002.0)
    led.secrets[DB].expires_at = 1020.0
    led.changed()
    assert s.save(led, 1003.0)
    assert s.load().secrets[DB].expires_at == 1020.0
    s.close()


def test_no_file_no_warning(tmp_path):
    loaded, text = load_warning(tmp_path)
    assert loaded is None and text == ""


def refused(tmp_path: Path, reason: str, vault: str = VAULT) -> str:
    loaded, text = load_warning(tmp_path, vault)
    assert loaded is None
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rconfd-py: warning: state file "), text
    assert str(tmp_path / "st" / "state.json") in lines[0] and reason in lines[0], text
    for value in (PASSWORD, TOKEN, "plaintext-kwarg", "v-user"):
        assert value not in text
    return text


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_group_or_world_readable_is_ignored(tmp_path, mode):
    (saved_dir(tmp_path) / "state.json").chmod(mode)
    refused(tmp_path, "readable or writable by group or others")


def test_another_owner_is_ignored(tmp_path):
    user = hostile_user()
    user.own(saved_dir(tmp_path) / "state.json")
    refused(tmp_path, f"owned by uid {user.uid}")


def test_corrupt_is_ignored(tmp_path):
    path = saved_dir(tmp_path) / "state.json"
    path.write_bytes(path.read_bytes()[:-40])  # cut short
    refused(tmp_path, "corrupt: not JSON")
    path.write_bytes(b"\xff\xfe" + PASSWORD.encode())
    refused(tmp_path, "corrupt: not UTF-8")


def test_tampered_fields_are_ignored(tmp_path):
    path = saved_dir(tmp_path) / "state.json"
    doc = json.loads(path.read_text())
    doc["secrets"][0]["expires_at"] = PASSWORD  # a string where a time belongs
    path.write_text(json.dumps(doc))
    refused(tmp_path, "malformed (TypeError)")
    doc["secrets"][0]["expires_at"] = 1.0
    doc["secrets"][0]["ref"][1] = "exe"  # a ref no state holds
    path.write_text(json.dumps(doc))
    refused(tmp_path, "malformed")


def test_a_number_too_large_for_a_float_is_malformed_not_a_crash(tmp_path):
    path = saved_dir(tmp_path) / "state.json"
    doc = json.loads(path.read_text())
    doc["saved_at"] = 10 ** 400
    path.write_text(json.dumps(doc))
    refused(tmp_path, "malformed (OverflowError)")


def test_supplied_tokens_are_marked_as_such(tmp_path):
    """A token from VAULT_TOKEN or the token file is saved marked: a later run that logs in
    itself never reuses it, nor revokes it (pipeline._resume)."""
    s = opened(tmp_path)
    assert s.save(ledger(), 1002.0, supplied=True)
    s.close()
    s = opened(tmp_path)
    assert s.load().supplied is True
    s.close()


def test_the_dir_is_never_made_through_a_link_a_user_planted(shared_tmp):
    """root makes the state dir in its parent reached without following a user's link: a
    link to a root-only directory gets no `st` made inside it."""
    user = hostile_user()
    srv = shared_tmp / "srv"  # the parent path runs through the user's directory
    srv.mkdir()
    user.own(srv)
    victim = shared_tmp / "rootonly"
    victim.mkdir(mode=0o700)
    user.run("ln", "-s", str(victim), str(srv / "data"))
    with captured_log() as out:
        assert StateDir.open(str(srv / "data" / "st"), VAULT) is None
    assert "symbolic link" in out.getvalue() and out.getvalue().count("\n") == 1
    assert list(victim.iterdir()) == []


def test_unknown_format_is_ignored(tmp_path):
    path = saved_dir(tmp_path) / "state.json"
    doc = json.loads(path.read_text())
    doc["format"] = 2
    path.write_text(json.dumps(doc))
    refused(tmp_path, "unknown format 2 (expected 1)")


def test_another_vault_is_ignored(tmp_path):
    saved_dir(tmp_path)
    refused(tmp_path, f"written for another Vault address ('{VAULT}')", "https://other:8200")


def test_a_planted_symlink_is_not_followed(tmp_path):
    d = saved_dir(tmp_path)
    (d / "state.json").rename(tmp_path / "elsewhere.json")
    (d / "state.json").symlink_to(tmp_path / "elsewhere.json")
    refused(tmp_path, "symbolic link")


def test_a_hard_link_is_ignored(tmp_path):
    d = saved_dir(tmp_path)
    os.link(d / "state.json", tmp_path / "second-name")
    refused(tmp_path, "several hard links")


def test_a_directory_others_can_write_is_not_used(tmp_path):
    d = tmp_path / "st"
    d.mkdir(mode=0o700)
    d.chmod(0o777)
    with captured_log() as out:
        assert StateDir.open(str(d), VAULT) is None
    assert out.getvalue().count("\n") == 1 and "writable by group or others" in out.getvalue()


def test_a_directory_of_another_owner_is_not_used(tmp_path):
    user = hostile_user()
    d = tmp_path / "st"
    d.mkdir(mode=0o700)
    user.own(d)
    with captured_log() as out:
        assert StateDir.open(str(d), VAULT) is None
    assert f"owned by uid {user.uid}" in out.getvalue()


def test_missing_parent_is_one_warning(tmp_path):
    with captured_log() as out:
        assert StateDir.open(str(tmp_path / "no" / "st"), VAULT) is None
    assert out.getvalue().count("\n") == 1 and "No such file or directory" in out.getvalue()


def test_a_second_process_sharing_the_dir_runs_without_it(tmp_path):
    import subprocess
    import sys

    first = opened(tmp_path)
    probe = ("import sys; from rconfd_py.state import StateDir; "
             f"print(StateDir.open({str(tmp_path / 'st')!r}, 'x') is None)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=False)
    assert out.stdout.strip() == "True", out.stderr
    assert "in use by another rconfd-py process" in out.stderr
    first.close()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=False)
    assert out.stdout.strip() == "False", out.stderr


def test_a_temp_file_left_by_a_killed_save_is_swept_and_the_last_state_stays(tmp_path):
    d = saved_dir(tmp_path)
    (d / f"{state.TEMP}12345").write_bytes(b'{"format": 1, "half wr')
    s = opened(tmp_path)
    assert s.load() is not None
    assert sorted(os.listdir(d)) == ["lock", "state.json"]
    s.close()


def test_a_failed_save_warns_once_and_is_retried(tmp_path):
    s = opened(tmp_path)
    led = ledger()
    (tmp_path / "st" / f"{state.TEMP}{os.getpid()}").mkdir()  # O_EXCL fails (root ignores modes)
    with captured_log() as out:
        assert not s.save(led, 1.0)
        led.changed()
        assert not s.save(led, 2.0)
    assert out.getvalue().count("cannot save the state file") == 1, out.getvalue()
    (tmp_path / "st" / f"{state.TEMP}{os.getpid()}").rmdir()
    assert not s.save(led, 3.0)  # not tried again at every wake-up: at the next change
    led.changed()
    assert s.save(led, 4.0) and s.load() is not None
    s.close()


def test_clear_removes_the_file(tmp_path):
    s = opened(tmp_path)
    s.save(ledger(), 1.0)
    s.clear()
    assert s.load() is None and not (tmp_path / "st" / "state.json").exists()
    s.close()


@pytest.mark.parametrize("remaining, length, ok", [
    (10, 30, True), (9.99, 30, False), (3.4, 10, True), (3.3, 10, False), (0, 10, False),
    (-5, 10, False), (100, 0, False), (1.5, 3, False),  # under twice the last try's margin
])
def test_useful_is_a_third_of_the_lease_or_lifetime(remaining, length, ok):
    assert leases.useful(remaining, length) is ok


def test_the_kubernetes_manifest_hands_over_from_the_init_container_to_the_daemon():
    """deploy/kubernetes: the one-shot init container and the daemon share the state dir (on
    a volume, in a subdirectory: an emptyDir's root is 0777) and the rendered files."""
    import yaml

    manifest = Path(__file__).resolve().parent.parent / "deploy/kubernetes/deployment.yaml"
    pod = yaml.safe_load(manifest.read_text())["spec"]["template"]["spec"]
    (init,), (main,) = pod["initContainers"], pod["containers"]
    assert "-D" not in init["command"] and init["image"] == main["image"]
    views = []
    for c in (init, main):
        env = {e["name"]: e.get("value") for e in c["env"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        state_dir = env["RCONFD_STATE_DIR"]
        (volume,) = [name for path, name in mounts.items() if state_dir.startswith(path + "/")]
        views.append((state_dir, volume, mounts["/etc/app"]))
    assert views[0] == views[1]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[views[0][1]]["emptyDir"]["medium"] == "Memory"


def test_the_setting_defaults_to_run_and_none_turns_it_off():
    from rconfd_py.settings import Settings

    assert Settings.build({}, env={}).state_dir == "/run/rconfd-py"
    assert Settings.build({}, env={"RCONFD_STATE_DIR": "none"}).state_dir is None
    assert Settings.build({"state_dir": "/x"}, env={"RCONFD_STATE_DIR": "none"}).state_dir == "/x"
    assert Settings.build({"state_dir": "None"}, env={}).state_dir is None
