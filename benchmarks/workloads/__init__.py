"""The workloads, each producing one results section."""
