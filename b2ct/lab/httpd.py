"""A static HTTP server for a lab's site services (package mirror, VM images): ``python -m b2ct.lab.httpd``.

    python -m b2ct.lab.httpd DIRECTORY ADDRESS PORT LOGFILE

Serves DIRECTORY read-only on ADDRESS:PORT (PORT 0: any free port) with the standard library's
threading server, logs one line per request to LOGFILE, and prints the bound port on stdout once it
listens, so the caller knows the server is ready. It stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import functools
import signal
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO


class _Handler(SimpleHTTPRequestHandler):
    log: TextIO = sys.stderr

    def log_message(self, format: str, *args: Any) -> None:
        self.log.write(f"{self.log_date_time_string()} {self.address_string()} {format % args}\n")
        self.log.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    directory, address, port, logfile = argv
    log = open(logfile, "a", encoding="utf-8")  # noqa: SIM115 (open for the server's lifetime)
    handler = type("Handler", (_Handler,), {"log": log})
    server = ThreadingHTTPServer((address, int(port)), functools.partial(handler, directory=directory))
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
