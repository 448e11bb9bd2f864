"""The tests, and the harness they share with benchmarks/: real servers (servers.py) and containers (containers.py)."""
