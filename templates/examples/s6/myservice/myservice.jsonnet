// Rendered by rconfd-py into /etc/myservice; myservice gets SIGHUP when a file changes.
local r = import 'rconfd.libsonnet';
local s = std.extVar('secrets');
{
  'myservice.conf': r.ini({
    tls: { cert: '/etc/myservice/tls.pem', key: '/etc/myservice/tls.key' },
    database: { user: s.db.username, password: s.db.password },
  }),
  'tls.pem': r.pem.fullchain(s.cert),
  'tls.key': r.pem.key(s.cert),
}
