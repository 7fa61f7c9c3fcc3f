"""Tests of adaptive_svdprune.search and its commands (pareto, profile)."""
