"""Application services (bridges): registrations, their users' authentication, and event push."""
