"""Deployment: nginx in front of serve workers on one machine."""
