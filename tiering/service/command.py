"""``tiering serve``: run the sidecar HTTP service under uvicorn."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from tiering.errors import ConfigurationError

if TYPE_CHECKING:
    from tiering.service.settings import ServiceSettings


@click.command()
@click.option("--host", help="Address to listen on. [env TIERING_HOST; default 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on. [env TIERING_PORT; default 8080]")
@click.option(
    "--backend",
    type=click.Choice(["qdrant", "milvus", "memory"]),
    help="Vector store of the hot tier. [env TIERING_BACKEND; default qdrant]",
)
@click.option("--qdrant-url", help="Qdrant server URL; without it, --qdrant-path. [env TIERING_QDRANT_URL]")
@click.option("--qdrant-path", help="Folder of Qdrant's local mode, or :memory:. [env TIERING_QDRANT_PATH]")
@click.option("--collection", help="Collection name. [env TIERING_COLLECTION; default tiering]")
@click.option("--dim", type=int, help="Vector dimension (required). [env TIERING_DIM]")
@click.option("--metric", help="cosine, dot or l2. [env TIERING_METRIC; default cosine]")
@click.option("--cold-dir", help="Local folder of the cold tier. [env TIERING_COLD_DIR]")
@click.option(
    "--s3-url", help="s3://bucket/prefix of the cold tier; wins over --cold-dir. [env TIERING_S3_URL]"
)
@click.option(
    "--redis-url", help="Redis for shared access scores and the tiering lease. [env TIERING_REDIS_URL]"
)
@click.option(
    "--interval", "interval_s", type=float,
    help="Seconds between tiering passes; 0 turns them off. [env TIERING_INTERVAL_S; default 300]",
)
@click.option("--log-level", help="DEBUG, INFO, WARNING or ERROR. [env TIERING_LOG_LEVEL; default INFO]")
def serve(**options: Any) -> None:
    """Run the sidecar: the HTTP API, a background tiering loop, /metrics, /healthz and /readyz.

    Every setting is read from TIERING_* environment variables; options override them.
    See docs/service.md for the full list.
    """
    from tiering.service.settings import ServiceSettings

    try:
        settings = ServiceSettings.from_env(**options)
    except ConfigurationError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    _configure_logging(settings.log_level)
    run(settings)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def run(settings: ServiceSettings) -> None:
    """Serve the app until SIGINT or SIGTERM; the lifespan stops the tasks and closes the store."""
    import uvicorn

    from tiering.service.app import create_app

    logging.getLogger(__name__).info("Starting the sidecar with %s", settings.summary())
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
