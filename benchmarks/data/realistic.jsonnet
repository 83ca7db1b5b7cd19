// A realistic multi-file template: several outputs, JSON/INI/YAML manifestation, string
// formatting, a library import, and a few hundred objects of data.
local r = import 'rconfd.libsonnet';
local s = std.extVar('secrets');
local services = [
  { name: 'svc%03d' % i, port: 8000 + i, replicas: 1 + i % 3,
    tags: ['tier-%d' % (i % 4), 'team-%s' % std.char(97 + i % 5)],
    upstreams: ['10.0.%d.%d:%d' % [i % 7, j, 9000 + j] for j in std.range(1, 4)] }
  for i in std.range(1, 40)
];
{
  'config.json': std.manifestJsonEx({ db: s.db, services: services }, '  '),
  'app.ini': r.ini({ [svc.name]: { port: svc.port, replicas: svc.replicas, tags: std.join(',', svc.tags) }
                     for svc in services }, { user: s.db.username }),
  'app.yaml': r.yaml({ database: s.db, services: services }),
  'app.env': r.envFile({ ['SVC_%s_PORT' % std.asciiUpper(svc.name)]: svc.port for svc in services }),
  'upstreams.conf': std.join('\n', [
    'upstream %s {\n%s\n}' % [svc.name, std.join('\n', ['  server %s;' % u for u in svc.upstreams])]
    for svc in services
  ]),
}
