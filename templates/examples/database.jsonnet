// Dynamic PostgreSQL credentials (a leased secret: daemon mode keeps them alive).
local r = import 'rconfd.libsonnet';
local s = std.extVar('secrets');

{
  pgpass: r.pgpass('127.0.0.1', s.port, 'postgres', s.db),
  'database.yaml': r.yaml({
    database: { host: '127.0.0.1', port: std.parseInt(s.port), user: s.db.username },
  }),
}
