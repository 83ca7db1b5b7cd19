// TLS certificate + key from the PKI engine (POST with common_name).
local r = import 'rconfd.libsonnet';
local cert = std.extVar('secrets').cert;

{
  'fullchain.pem': r.pem.fullchain(cert),
  'key.pem': r.pem.key(cert),
  'ca.pem': r.pem.ca(cert),
  'cert.json': { serial: cert.serial_number, expiration: cert.expiration },
}
