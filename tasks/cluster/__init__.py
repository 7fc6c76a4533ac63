"""Cluster extraction with the official kubernetes client: images in use and Helm history."""
