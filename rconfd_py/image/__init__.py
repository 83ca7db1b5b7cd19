"""The golden image: `rconfd-py image containerfile|context|build`.

Alpine + s6-overlay + rconfd-py supervised by s6 (deploy/rootfs/etc/services.d/rconfd).
Imported only by the `image` subcommands, never on the daemon path.
"""
