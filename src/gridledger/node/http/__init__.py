"""The HTTP API and dashboard of a node (FastAPI served by uvicorn in the replica's loop).

:func:`~.app.create_app` builds the app over a :class:`~gridledger.node.service.NodeService`;
:class:`~.server.HttpServer` serves it; :class:`~.stream.Broadcaster` fans committed
blocks and trades out to server-sent-event subscribers. See ``docs/api.md``.
"""

from gridledger.node.http.app import HttpSettings, create_app
from gridledger.node.http.server import HttpServer
from gridledger.node.http.stream import Broadcaster

__all__ = ["Broadcaster", "HttpServer", "HttpSettings", "create_app"]
