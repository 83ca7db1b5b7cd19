"""Which proxy a Vault request goes through, as Vault's Go client decides it.

- `VAULT_PROXY_ADDR`, else `VAULT_HTTP_PROXY` (Vault's api/client.go): one proxy for every
  request, http and https, NO_PROXY not consulted, loopback included (http.ProxyURL).
- Otherwise Go's net/http ProxyFromEnvironment (golang.org/x/net/http/httpproxy):
  `HTTP_PROXY` for http://, `HTTPS_PROXY` for https:// (no fall-back from one to the other),
  each name upper case first, then lower case (the first one set wins); never for `localhost`
  or a loopback address; `NO_PROXY` (or `no_proxy`), comma-separated: `*` (everything), an IP
  address or a CIDR range, `name` (that name and its subdomains), `.name` or `*.name` (its
  subdomains only), any of them with `:port` (that port only; the URL's default port counts).
- A proxy value without a scheme is `http://`. Only http:// proxies are supported (https:// to
  the proxy, socks5: a one-line config error). `user:password@` in the proxy URL is sent as
  `Proxy-Authorization: Basic`; the proxy is only ever shown without it (`Proxy.name`).

Pure: reads the environment mapping it is given, no I/O. `ipaddress` is imported only when
NO_PROXY names an address.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError

DEFAULT_PORTS = {"http": 80, "https": 443}


class Proxy(namedtuple("Proxy", "host port authorization name")):
    """An http:// proxy: where to connect, the Proxy-Authorization value (or None), and how to
    name it in a message (scheme, host and port: never the credentials)."""

    __slots__ = ()

    def __repr__(self) -> str:  # never show the credentials
        return f"Proxy({self.name})"


def parse_proxy(text: str, what: str) -> Proxy:
    """`http://[user:pass@]host[:port]` (or `host[:port]`); ConfigError names `what`."""
    text = text.strip()
    if "://" not in text:
        text = "http://" + text
    # the credentials before the last @ hold a secret: a raw / # ? or a non-ASCII character
    # there is refused before parsing (a parser would cut or quote them in its error)
    userinfo = credentials(text)
    if userinfo and (any(c in userinfo for c in "/#?") or not userinfo.isascii()
                     or not userinfo.isprintable()):
        raise ConfigError(f"{what}: not a proxy URL (percent-encode / # ? @ and non-ASCII "
                          f"characters in the credentials)")
    try:
        u = urlsplit(text)
        port = u.port
        host = u.hostname
    except ValueError:  # the parser's text may quote the credentials: never shown
        raise ConfigError(f"{what}: not a proxy URL (http://[user:pass@]host[:port] "
                          f"expected)") from None
    if u.scheme != "http":
        raise ConfigError(f"{what}: {u.scheme}:// proxies are not supported (an http:// proxy; "
                          f"https to Vault goes through it in a CONNECT tunnel)")
    if not host:
        raise ConfigError(f"{what}: not a proxy URL (no host)")
    port = port or 80
    auth = None
    if u.username is not None:
        import base64

        pair = f"{unquote(u.username)}:{unquote(u.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    shown = f"[{host}]" if ":" in host else host
    return Proxy(host, port, auth, f"http://{shown}:{port}")


def credentials(text: str) -> str:
    """What a proxy URL holds before the last @ of its authority ("" if nothing): its
    user:password. Read before any URL parsing, which would cut it at a raw / # or ?."""
    return text.split("://", 1)[-1].rpartition("@")[0]


def proxy_password(text: str) -> str | None:
    """The password in a proxy URL, to register with the log redactor."""
    try:
        u = urlsplit(text if "://" in text else "http://" + text)
        return unquote(u.password) if u.password else None
    except ValueError:
        return None


def _env(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        if env.get(name):
            return name, env[name]
    return None


class Proxies:
    """The proxy rules of one environment. `for_url(scheme, host, port)`: the Proxy to use
    for that origin, or None to connect directly."""

    def __init__(self, env: Mapping[str, str]):
        self.fixed: Proxy | None = None
        self.http = self.https = None
        self.values: list[str] = []  # the raw values, for the redactor
        found = _env(env, "VAULT_PROXY_ADDR", "VAULT_HTTP_PROXY")
        if found:
            self.fixed = parse_proxy(found[1], found[0])
            self.values.append(found[1])
            return
        for scheme in ("http", "https"):
            found = _env(env, f"{scheme.upper()}_PROXY", f"{scheme}_proxy")
            if found:
                setattr(self, scheme, parse_proxy(found[1], found[0]))
                self.values.append(found[1])
        found = _env(env, "NO_PROXY", "no_proxy")
        self._no_proxy = found[1] if found and (self.http or self.https) else ""
        self._rules: tuple | None = None

    def __bool__(self) -> bool:
        return bool(self.fixed or self.http or self.https)

    def for_url(self, scheme: str, host: str, port: int | None) -> Proxy | None:
        if self.fixed is not None:
            return self.fixed
        proxy = self.https if scheme == "https" else self.http
        if proxy is None:
            return None
        port = port or DEFAULT_PORTS.get(scheme, 0)
        return proxy if use_proxy(host, port, self._parsed()) else None

    def _parsed(self) -> tuple:
        if self._rules is None:
            self._rules = parse_no_proxy(self._no_proxy)
        return self._rules


def _ip(text: str):
    if not text or not (text[0].isdigit() or ":" in text):
        return None  # a name: skip importing ipaddress for it
    import ipaddress

    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:a.b.c.d is a.b.c.d, as in Go


def _split_port(entry: str) -> tuple[str, str]:
    """Go's net.SplitHostPort, for a NO_PROXY entry: (host, port) or (entry, '')."""
    if entry.startswith("["):
        end = entry.find("]")
        if end > 0 and entry[end + 1:end + 2] == ":":
            return entry[1:end], entry[end + 2:]
        return entry, ""
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port
    return entry, ""


def parse_no_proxy(text: str) -> tuple:
    """(everything, networks, [(ip, port)], [(suffix, port, match_host)]) as Go parses it:
    a malformed entry is skipped."""
    nets, ips, names = [], [], []
    for entry in text.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True, (), (), ()
        if "/" in entry:
            import ipaddress

            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                pass
            continue
        host, port = _split_port(entry)
        if not host:
            continue
        ip = _ip(host)
        if ip is not None:
            ips.append((ip, port))
            continue
        if host.startswith("*."):
            host = host[1:]
        match_host = not host.startswith(".")
        names.append(("." + host if match_host else host, port, match_host))
    return False, tuple(nets), tuple(ips), tuple(names)


def use_proxy(host: str, port: int, rules: tuple) -> bool:
    """Whether a request to host:port goes through the proxy (Go's useProxy)."""
    host = host.strip().lower().strip("[]")
    if host == "localhost":
        return False
    ip = _ip(host)
    if ip is not None and ip.is_loopback:
        return False
    everything, nets, ips, names = rules
    if everything:
        return False
    p = str(port)
    if ip is not None:
        if any(ip in net for net in nets if net.version == ip.version):
            return False
        if any(ip == i and (not ip_port or ip_port == p) for i, ip_port in ips):
            return False
    for suffix, name_port, match_host in names:
        if (host.endswith(suffix) or (match_host and host == suffix[1:])) and (
                not name_port or name_port == p):
            return False
    return True
