"""``invdes review``: the chemist's review page."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from flows.cli.common import err, fail

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_VARIABLE = "INVDES_REVIEW_TOKEN"


def review(
    host: Annotated[str, typer.Option(help="Address to serve on; another than 127.0.0.1 "
                                           "needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8765,
    store: Annotated[str | None, typer.Option(help="Store (SQLAlchemy URL); default: the "
                                                   "campaigns' store.")] = None,
    token: Annotated[str | None, typer.Option(
        help=f"Required on every request (default: ${TOKEN_VARIABLE}); open "
             "/login?token=... once in the browser.")] = None,
) -> None:
    """Serve the review page: campaigns, their rounds and plots, ranked candidates with
    pictures (molecules shaded by where HOMO and LUMO sit), decisions (approve, reject, flag),
    exports for the lab and uploads of lab results. The JSON API is documented at /docs."""
    import uvicorn

    from flows.cli.common import open_store
    from flows.review.app import create_app

    token = token or os.environ.get(TOKEN_VARIABLE) or None
    if host not in LOOPBACK and not token:
        fail(f"serving on {host} lets other machines in: give a token with --token or "
             f"${TOKEN_VARIABLE} (or serve on 127.0.0.1)")
    url = open_store(store).url
    app = create_app(url, token)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"review page on http://{shown}:{port}/"
              + (f" (open http://{shown}:{port}/login?token=... once)" if token else "")
              + f"; store {url}; Ctrl-C stops it", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")
