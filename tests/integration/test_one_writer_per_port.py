"""A second server process on a port already served fails to start, saying why (no SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from comity.core.errors import ConfigError
from comity.core.pki import CertificateAuthority
from comity.core.serving import start_server

_SERVE = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import grpc
    from comity.core.serving import start_server

    async def main() -> None:
        cert, key = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]).read_bytes()
        handle = await start_server(
            listen="127.0.0.1:0", register=lambda s: None, service_names=(),
            credentials=grpc.ssl_server_credentials([(key, cert)]),
        )
        print(handle.port, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[bytes, bytes, Path, Path]:
    now = datetime.now(UTC)
    issued = CertificateAuthority.create("Test CA", now=now).issue_server("srv", names=["127.0.0.1"], now=now)
    cert, key = tmp_path / "srv.crt", tmp_path / "srv.key"
    issued.save(cert, key)
    return cert.read_bytes(), key.read_bytes(), cert, key


async def test_a_second_process_on_a_served_port_refuses_to_start(
    tls: tuple[bytes, bytes, Path, Path],
) -> None:
    cert, key, cert_path, key_path = tls
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SERVE, str(cert_path), str(key_path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert first.stdout is not None
        port = int(await first.stdout.readline())
        with pytest.raises(ConfigError, match="the address is in use"):
            await start_server(
                listen=f"127.0.0.1:{port}",
                register=lambda s: None,
                service_names=(),
                credentials=grpc.ssl_server_credentials([(key, cert)]),
            )
    finally:
        first.kill()
        await first.wait()
