"""Matrix protocol logic with no I/O.

Modules: ``canonical_json``, ``unpadded_base64``, ``crypto`` (hashes, ed25519
signing, signing-key files), ``room_versions``, ``ids``, ``events``,
``redaction``, ``power_levels``, ``auth_rules``, ``presets``, ``filters`` and
``errors``. Nothing here imports from outside ``hamlet.core``.
"""
