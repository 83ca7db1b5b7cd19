import pytest

from rconfd_py.errors import ConfigError
from rconfd_py.settings import Settings


def test_defaults_match_rconfd():
    s = Settings.build({}, env={})
    assert s.dir == "/etc/rconfd" and s.login_path == "/auth/kubernetes/login"
    assert s.url == "https://localhost:8200"
    assert s.token_path == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert s.cacert == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    assert not s.daemon and s.ready_fd is None and s.jpath == ()


def test_env_then_flags_win():
    env = {"RCONFD_DIR": "/env", "RCONFD_LOGIN_PATH": "/auth/jwt/login", "RCONFD_READY_FD": "3",
           "RCONFD_DAEMON": "true", "RCONFD_JPATH": "/a, /b", "VAULT_ADDR": "http://v:8200",
           "VAULT_NAMESPACE": "team"}
    s = Settings.build({"dir": "/flag"}, env=env)
    assert s.dir == "/flag" and s.login_path == "/auth/jwt/login" and s.ready_fd == 3
    assert s.daemon and s.jpath == ("/a", "/b") and s.url == "http://v:8200"
    assert s.namespace == "team"


def test_vault_url_wins_over_vault_addr_and_rconfd_url_over_both():
    assert Settings.build({}, env={"VAULT_URL": "u", "VAULT_ADDR": "a"}).url == "u"
    assert Settings.build({}, env={"RCONFD_URL": "r", "VAULT_URL": "u"}).url == "r"


@pytest.mark.parametrize("name,value", [("RCONFD_READY_FD", "x"), ("RCONFD_DAEMON", "maybe"),
                                        ("RCONFD_POLL", "soon"), ("RCONFD_POLL", "-1")])
def test_bad_env_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name if value != "-1" else r"--poll must be positive"):
        Settings.build({}, env={name: value})


@pytest.mark.parametrize("flags", [{"poll": float("nan")}, {"poll": float("inf")},
                                   {"timeout": -1.0}, {"timeout": 0.0}, {"timeout": 1e300},
                                   {"idle_exec": "'unterminated"}, {"idle_exec": " "}])
def test_out_of_range_numbers_and_bad_commands_are_config_errors(flags):
    with pytest.raises(ConfigError):
        Settings.build(flags, env={})
