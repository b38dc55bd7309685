"""Loopback simulators of outside services: real servers the real client code talks to."""
