"""Load tests: locust users, an echo reference service, and the runner that writes the report."""
