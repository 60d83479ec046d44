"""Fault injection: real processes killed, real servers, real receivers. Each test names the fault it injects."""
