"""Accuracy and performance studies of meanfield-pde (run with ``python -m benchmarks``)."""
