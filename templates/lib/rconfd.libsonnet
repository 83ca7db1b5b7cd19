// Helpers for rconfd-py templates. Import with `-j /path/to/templates/lib`:
//   local r = import 'rconfd.libsonnet';
{
  // KEY=value lines for env files (systemd EnvironmentFile, docker --env-file, dotenv).
  // Values are single-quoted when they hold anything but [A-Za-z0-9_./:@%+-].
  envFile(obj)::
    local safe(v) = std.length(std.findSubstr("'", v)) == 0 && std.all([
      std.member('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:@%+-', c)
      for c in std.stringChars(v)
    ]);
    local quote(v) = if v != '' && safe(v) then v
      else "'" + std.strReplace(v, "'", "'\\''") + "'";
    std.join('', ['%s=%s\n' % [k, quote(std.toString(obj[k]))] for k in std.objectFields(obj)]),

  // An INI file from { section: { key: value } } (plus optional top-level `main` keys).
  ini(sections, main={})::
    std.manifestIni({ main: main, sections: sections }),

  // YAML document (for apps that read YAML).
  yaml(obj):: std.manifestYamlDoc(obj, indent_array_in_object=true, quote_keys=false),

  // PEM helpers for a PKI issue answer (`data` of pki/issue/ROLE).
  pem:: {
    // leaf certificate followed by its issuing chain, as servers expect.
    fullchain(cert)::
      std.join('\n', [cert.certificate] + [c for c in std.get(cert, 'ca_chain', []) if c != cert.certificate]),
    key(cert):: cert.private_key,
    ca(cert):: cert.issuing_ca,
  },

  // libpq password file line: host:port:db:user:password
  pgpass(host, port, db, creds)::
    '%s:%s:%s:%s:%s' % [host, port, db, creds.username, creds.password],
}
