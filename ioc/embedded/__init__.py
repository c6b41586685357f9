"""Local servers (PostgreSQL, mosquitto, a Kafka-protocol broker) for `ioc demo` and the tests.

Each one runs from a temporary directory on a free loopback port, is owned by the object that
started it, and is stopped by PID; nothing here touches a server it did not start.
"""

from ioc.embedded.process import ServerProcess, free_port

__all__ = ["ServerProcess", "free_port"]
