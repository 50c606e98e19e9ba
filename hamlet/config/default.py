"""Writing a starter config for a fresh homeserver."""

from __future__ import annotations

import ipaddress
import json
import secrets
from pathlib import Path

from hamlet.config._reader import Invalid
from hamlet.config.errors import ConfigError
from hamlet.config.homeserver import server_name_host, validate_server_name


def _q(value: str) -> str:
    # A JSON string is a valid double-quoted YAML scalar.
    return json.dumps(value)


def _is_local(server_name: str) -> bool:
    host = server_name_host(server_name)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def generate_default_config(server_name: str, data_dir: Path) -> str:
    """A commented YAML config for a new single homeserver storing its data in ``data_dir``."""
    try:
        validate_server_name(server_name)
    except Invalid as e:
        raise ConfigError(f"server_name: {e}") from None
    data_dir = Path(data_dir).absolute()
    if _is_local(server_name):
        public_baseurl = "http://127.0.0.1:8008/"
    else:
        public_baseurl = f"https://{server_name}/"
    secret = secrets.token_urlsafe(32)

    return f"""\
# Hamlet homeserver configuration.
#
# Key names follow Synapse's homeserver.yaml. Relative paths are resolved
# against the directory holding this file.

# The domain in your users' IDs (@alice:{server_name}). It cannot be changed
# later without losing every account and room.
server_name: {_q(server_name)}

# The URL clients use to reach this server (behind a reverse proxy, the
# proxy's public https:// address).
public_baseurl: {_q(public_baseurl)}

# Where to listen. Serve on loopback and put a TLS-terminating reverse proxy
# in front; set x_forwarded: true if the proxy sends X-Forwarded-For.
listeners:
  - port: 8008
    bind_addresses: ['127.0.0.1']
    type: http
    x_forwarded: false
    resources:
      - names: [client]
        compress: false

# SQLite is fine for a small server. For PostgreSQL use
#   name: psycopg2
#   args: {{user: ..., password: ..., database: ..., host: ..., port: 5432,
#          cp_min: 5, cp_max: 10, schema: public}}
database:
  name: sqlite3
  args:
    database: {_q(str(data_dir / "homeserver.db"))}

# The server's ed25519 signing key; created on first start if missing.
# Keep it safe: losing it breaks federation with this server name.
signing_key_path: {_q(str(data_dir / f"{server_name}.signing.key"))}

# Uploaded files and thumbnails.
media_store_path: {_q(str(data_dir / "media_store"))}
max_upload_size: 50M

# Logs go to stderr unless log_config names a Python logging config file
# (a YAML dictConfig), as in Synapse.
#log_config: /path/to/log.config

# `hamlet serve --daemonize` detaches from the terminal and writes its
# process ID here (removed again when it stops cleanly).
#pid_file: /path/to/homeserver.pid

# Tracing (OpenTelemetry over OTLP/HTTP): one span per request and job.
#opentracing:
#  enabled: true
#  sample_rate: 1.0
#  homeserver_whitelist: [".*"]
#  otlp_endpoint: http://localhost:4318/v1/traces

# Registration is closed: create users with `hamlet register-user` or the
# admin API. Open registration also needs registration_requires_token: true
# (or, at your own risk, enable_registration_without_verification: true).
enable_registration: false

# Lets `hamlet register-user` and the shared-secret admin registration API
# create accounts. Keep it secret.
registration_shared_secret: {_q(secret)}

# Password hashing cost (bcrypt rounds).
bcrypt_rounds: 12

# New rooms are created with this room version ("10" or "11": the versions
# this server can create; older ones are only understood over federation).
default_room_version: "10"

# Rate limits (Synapse's defaults), e.g.:
#rc_message:
#  per_second: 0.2
#  burst_count: 10
"""
