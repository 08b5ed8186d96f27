"""The legal officers' console: a verified local mirror of the log and a web application over it.

The mirror (:mod:`~comity.sdk.console.mirror`), its sources, its verifier and the background
sync need only the SDK's own dependencies; the web application needs the ``console`` extra
(``pip install 'comity[console]'``: Starlette, Jinja2, uvicorn) and is imported only by
``comity audit console``.
"""

__all__: list[str] = []
