"""The framework-agnostic core: specs, randomness, the planner, the one executor, the
registry, the run and serialization.

Nothing under ``augspec.core`` imports a deep-learning framework, the plugin layer or a
backend: dependencies point down (docs/architecture.md).
"""
