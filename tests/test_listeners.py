"""How the Procfile's web process listens. With more than one worker, each binds a socket of its own to the port
(gunicorn's --reuse-port) and the kernel spreads new connections over them, so connections opened together (a
proxy's, a load tester's) do not all land on the worker that woke first. With one worker, the port is bound without
SO_REUSEPORT, so a second server started on it by mistake fails instead of sharing it."""

import os
import socket
from contextlib import ExitStack

import psutil
import pytest
from django.db import connection

from tests.live import procfile_server

CONNECTIONS = 32


def _listening_sockets(process: psutil.Process, port: int) -> set[str]:
    """The sockets (as /proc names them, by inode) listening on `port` that this process holds."""
    fds = {conn.fd for conn in process.net_connections("tcp") if conn.status == "LISTEN" and conn.laddr.port == port}
    return {os.readlink(f"/proc/{process.pid}/fd/{fd}") for fd in fds}


def test_each_of_two_workers_listens_on_its_own_socket_and_gets_connections_opened_together(db):
    with procfile_server(connection.settings_dict, DEBUG="1", WEB_CONCURRENCY="2") as (url, server):
        port = int(url.rsplit(":", 1)[1])
        workers = psutil.Process(server.pid).children()
        assert len(workers) == 2
        assert _listening_sockets(psutil.Process(server.pid), port) == set()  # the master binds none
        listening = [_listening_sockets(worker, port) for worker in workers]
        assert [len(sockets) for sockets in listening] == [1, 1]
        assert listening[0] != listening[1]

        with ExitStack() as stack:
            clients = [  # opened together and kept, as a proxy or wrk keeps them
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
                for _ in range(CONNECTIONS)
            ]
            for client in clients:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for client in clients:
                assert client.recv(64).startswith(b"HTTP/1.1 200 OK")
            client_ports = {client.getsockname()[1] for client in clients}
            held = [
                {conn.raddr.port for conn in worker.net_connections("tcp") if conn.raddr} & client_ports
                for worker in workers
            ]
    # Each connection on one worker, and each worker with some: the kernel picks a worker's socket by the
    # connection's addresses, so all 32 on one worker has a chance of 2 × 2**-32.
    assert len(held[0]) + len(held[1]) == CONNECTIONS
    assert held[0] | held[1] == client_ports
    assert held[0] and held[1]


def test_one_worker_binds_the_port_so_that_no_second_server_can_share_it(db):
    with procfile_server(connection.settings_dict, DEBUG="1", WEB_CONCURRENCY="1") as (url, server):
        port = int(url.rsplit(":", 1)[1])
        master = psutil.Process(server.pid)
        [worker] = master.children()
        shared = _listening_sockets(master, port)
        assert len(shared) == 1  # the master's, which the worker inherits
        assert _listening_sockets(worker, port) == shared
        with socket.socket() as second:
            second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            with pytest.raises(OSError, match="Address already in use"):
                second.bind(("127.0.0.1", port))
