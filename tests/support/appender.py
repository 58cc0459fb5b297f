"""A process that records commands from many threads through its group-commit writer and
prints ``<aggregate id> <position>`` for each command once it is answered (flushed at once):
``python -m tests.support.appender`` with ``DATABASE_URL`` set. Tests kill it with -9."""

from __future__ import annotations

import sys
import threading

from flowledger.domain.agents import Agent
from flowledger.eventlog.store import EventMetadata
from flowledger.runtime.process import Runtime
from flowledger.runtime.settings import get_settings

THREADS = 8
META = EventMetadata.system("appender")


def main() -> None:
    runtime = Runtime.open(get_settings(), migrate=False)
    printing = threading.Lock()

    def append() -> None:
        while True:
            agent = Agent.register(name=f"agent-{threading.get_ident()}", url="http://a")
            position = runtime.store.record(agent, metadata=META)
            with printing:
                sys.stdout.write(f"{agent.id} {position}\n")
                sys.stdout.flush()

    for _ in range(THREADS):
        threading.Thread(target=append, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
