"""Local parts for the demo and the tests: a real registry, demo images, a Kubernetes API fixture."""
