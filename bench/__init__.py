"""Benchmarks (not tests): duratask figures as ratios against raw Temporal, same run."""
