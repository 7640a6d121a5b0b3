#!/usr/bin/env python3
"""A loopback TCP port whose connects hang: used by palisade's tests of the
upstream connect timeout (crates/palisade/tests/upstreams.rs).

Listens with a backlog of 0 and fills the accept queue with one connection it
never accepts; Linux then drops further SYNs, so a client's connect neither
succeeds nor is refused until its own timeout. Prints the port on one line,
then holds everything until stdin is closed (the test ending) or 120 s.
"""

import select
import socket
import sys

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(0)
port = listener.getsockname()[1]
filler = socket.create_connection(("127.0.0.1", port), timeout=5)
print(port, flush=True)
select.select([sys.stdin], [], [], 120)
