// App config from a kv v2 secret: one env file, one INI file, one JSON file.
local r = import 'rconfd.libsonnet';
local s = std.extVar('secrets');
local app = s.app.data;  // kv v2 answers { data: {...}, metadata: {...} }

{
  'app.env': r.envFile({
    APP_USER: app.username,
    APP_PASSWORD: app.password,
    APP_HOST: s.hostname,
  }),
  'app.ini': r.ini({
    auth: { user: app.username, api_key: app.api_key },
    server: { host: s.hostname, version: s.app.metadata.version },
  }),
  // non-string values are written as indented JSON
  'app.json': {
    user: app.username,
    signature: std.split(s.hmac.hmac, ':')[2],  // transit hmac: "vault:v1:<mac>"
  },
}
