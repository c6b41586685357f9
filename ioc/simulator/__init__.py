"""The Hậu Giang sensor and camera simulator behind ``ioc simulate``.

``generate_payloads`` gives the stream for benchmarks and tests;
``add_simulate_arguments`` / ``run_simulate`` are the CLI entry points.
"""

from ioc.simulator.cli import add_simulate_arguments, run_simulate
from ioc.simulator.stream import EventStream, generate_payloads

__all__ = ["EventStream", "add_simulate_arguments", "generate_payloads", "run_simulate"]
