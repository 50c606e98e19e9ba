"""The federation sender: per-destination transaction queues, retries with
backoff, catch-up after an outage, and the admin view of destinations."""
