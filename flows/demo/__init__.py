"""Local parts for the demo and the tests: registry, images, Git, a Kubernetes API fixture."""
