"""Real SMTP servers on 127.0.0.1 (aiosmtpd): one that accepts, one that refuses, one that
never answers."""

import socket
import threading
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """Collects every message the server accepted."""

    def __init__(self, *, data_reply: str = "250 OK", rcpt_reply: str | None = None):
        self.data_reply = data_reply
        self.rcpt_reply = rcpt_reply
        self.envelopes = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply.startswith("250"):
            self.envelopes.append(envelope)
        return self.data_reply

    @property
    def messages(self):
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]


@pytest.fixture
def smtp_server():
    """Start an SMTP server; returns (mailbox, url)."""
    controllers = []

    def start(**replies):
        mailbox = Mailbox(**replies)
        port = free_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return mailbox, f"smtp://127.0.0.1:{port}"

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never says a word (SMTP times out)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _address = listener.accept()
                accepted.append(connection)
            except TimeoutError:
                continue
            except OSError:
                break

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"smtp://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for connection in accepted:
        connection.close()
    listener.close()
