"""Benchmarks: ``python -m bench.<name>``; ``python -m bench`` runs the quick ones.

Each prints a table of medians over repeated rounds and, where it names one,
the ratio against a baseline measured in the same process, so machine noise
cancels out.
"""
