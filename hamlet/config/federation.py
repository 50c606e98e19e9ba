"""The federation transport's keys (Synapse's top-level names).

`ip_range_blacklist` / `ip_range_whitelist` are read once for every
outbound client (`push.ip_ranges`); `federation_domain_whitelist` and the
`federation:` section (timeouts, retries) with the key and sender settings.
"""

from __future__ import annotations

from hamlet.config._reader import Section
from hamlet.config.model import FederationTransportConfig
from hamlet.config.push import to_networks


def federation_transport_config(
    root: Section, ip_blacklist: tuple[str, ...], ip_whitelist: tuple[str, ...]
) -> FederationTransportConfig:
    # As in Synapse: the legacy federation list, when given, replaces both
    # general lists for federation (and no whitelist applies); otherwise
    # federation uses the general ones.
    fed_blacklist, fed_whitelist = ip_blacklist, ip_whitelist
    if root.value("federation_ip_range_blacklist") is not None:
        fed_blacklist = root.get("federation_ip_range_blacklist", (), to_networks)
        fed_whitelist = ()
    return FederationTransportConfig(
        verify_certificates=root.bool_("federation_verify_certificates", True),
        federation_ip_range_blacklist=fed_blacklist,
        federation_ip_range_whitelist=fed_whitelist,
        serve_server_wellknown=root.bool_("serve_server_wellknown", False),
        tls_certificate_path=root.opt_path("tls_certificate_path"),
        tls_private_key_path=root.opt_path("tls_private_key_path"),
    )
