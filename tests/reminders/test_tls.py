"""SMTP over STARTTLS and implicit TLS, with a login, against aiosmtpd with a certificate
from a throwaway CA: the channel checks the certificate and sends the password only over
TLS."""

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.reminders.conftest import Mailbox, free_port
from webapp.reminders.channels import DeliveryError, EmailChannel


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1; returns (cert file, key file, ca file)."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)

    def make(subject, issuer, key, issuer_key, *, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make("Test CA", "Test CA", ca_key, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = make("127.0.0.1", "Test CA", server_key, ca_key, ca=False)
    paths = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(paths["cert"]), str(paths["key"]), str(paths["ca"])


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"yunketang" and auth_data.password == b"p@ss word"
    return AuthResult(success=ok)


@pytest.fixture
def tls_server(certificate):
    cert, key, _ca = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controllers = []

    def start(*, implicit: bool):
        mailbox = Mailbox()
        port = free_port()
        options = {"authenticator": authenticator}
        if implicit:
            # aiosmtpd only counts STARTTLS as TLS for AUTH; the connection is TLS anyway.
            controller = Controller(
                mailbox,
                hostname="127.0.0.1",
                port=port,
                ssl_context=context,
                auth_require_tls=False,
                **options,
            )
        else:
            controller = Controller(
                mailbox,
                hostname="127.0.0.1",
                port=port,
                tls_context=context,
                require_starttls=True,
                auth_require_tls=True,
                **options,
            )
        controller.start()
        controllers.append(controller)
        return mailbox, port

    yield start
    for controller in controllers:
        controller.stop()


MESSAGE = b"To: a@example.org\r\nSubject: test\r\n\r\nbody\r\n"


@pytest.mark.parametrize(("scheme", "implicit"), [("smtp+starttls", False), ("smtps", True)])
def test_tls_with_login(tls_server, certificate, scheme, implicit):
    mailbox, port = tls_server(implicit=implicit)
    url = f"{scheme}://yunketang:p%40ss%20word@127.0.0.1:{port}"
    with EmailChannel(
        url, sender="noreply@localhost", timeout=5, ca_file=certificate[2]
    ) as channel:
        channel.send("a@example.org", MESSAGE, key="x")
    assert len(mailbox.envelopes) == 1


def test_an_untrusted_certificate_is_refused(tls_server):
    _mailbox, port = tls_server(implicit=False)
    url = f"smtp+starttls://yunketang:p%40ss%20word@127.0.0.1:{port}"
    channel = EmailChannel(url, sender="noreply@localhost", timeout=5)
    with channel, pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        channel.send("a@example.org", MESSAGE, key="x")
