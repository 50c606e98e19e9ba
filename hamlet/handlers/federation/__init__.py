"""Federation: the Server-Server API, both directions."""
