"""deploy/nginx/yunketang.conf (the reverse proxy with TLS) and deploy/nginx/edge.conf (a
caching edge for streams) load in this Debian's nginx (1.22), checked by `nginx -t` with a
throwaway certificate in place of the site's. (Before: "unknown directive http2", a form
that needs nginx 1.25.1.)"""

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import require

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"


def throwaway_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ke.example.org")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key_file


def nginx_test(tmp_path: Path, site: str) -> subprocess.CompletedProcess:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    require(Path(nginx).exists(), "nginx is not installed (apt-get install nginx)")
    (tmp_path / "site.conf").write_text(site)
    temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        "http {\n    access_log off;\n"
        + "".join(
            f"    {name}_temp_path {path};\n"
            for name, path in (
                ("client_body", temp["body"]),
                ("proxy", temp["proxy"]),
                ("fastcgi", temp["fastcgi"]),
                ("uwsgi", temp["uwsgi"]),
                ("scgi", temp["scgi"]),
            )
        )  # fmt: skip
        + f"    include {tmp_path / 'site.conf'};\n}}\n"
    )
    return subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )


def test_the_reverse_proxy_site_loads_in_debian_s_nginx(tmp_path):
    cert, key = throwaway_certificate(tmp_path)
    site = (DEPLOY / "yunketang.conf").read_text()
    live = "/etc/letsencrypt/live/ke.example.org/"
    assert live + "fullchain.pem" in site and live + "privkey.pem" in site
    site = site.replace(live + "fullchain.pem", str(cert))
    site = site.replace(live + "privkey.pem", str(key))
    # Its own logs, where Debian's logrotate (/var/log/nginx/*.log) rotates them.
    assert set(re.findall(r"_log (\S+);", site)) == {
        "/var/log/nginx/yunketang.access.log",
        "/var/log/nginx/yunketang.error.log",
    }
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    done = nginx_test(tmp_path, site)
    assert done.returncode == 0, done.stderr
    assert "[warn]" not in done.stderr and "[emerg]" not in done.stderr, done.stderr


def test_the_streaming_edge_loads_in_debian_s_nginx(tmp_path):
    (tmp_path / "cache").mkdir()  # /var/cache/nginx, which Debian's package makes
    edge = (DEPLOY / "edge.conf").read_text().replace("/var/cache/nginx", str(tmp_path / "cache"))
    done = nginx_test(tmp_path, edge)
    assert done.returncode == 0, done.stderr
