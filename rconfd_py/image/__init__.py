"""The golden image hierarchy: `rconfd-py image base|build|service|containerfile|context`.

base.py: the base layer (Alpine, a private apk repository, mimalloc); containerfile.py and
context.py: the s6 layer (s6-overlay + rconfd-py supervised by s6, rootfs/: package data);
service.py and scripts.py: service images FROM it; layers.py: what the levels share. Imported
only by the `image` subcommands, never on the daemon path.
"""
