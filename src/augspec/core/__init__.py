"""The framework-agnostic core: specs, randomness, the planner and serialization.

Nothing under ``augspec.core`` imports a deep-learning framework.
"""
