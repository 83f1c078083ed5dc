"""What the data room adds to the hub: the datasets catalogue's API and page."""

from naic.hub.data.datasets import DatasetsHandler, DatasetsPage

HANDLERS = [
    (r"/api/naic/datasets", DatasetsHandler),
    (r"/api/naic/datasets/([a-z][a-z0-9_-]{0,39})", DatasetsHandler),
    (r"/naic/datasets", DatasetsPage),
]
SCOPES: dict = {}
USER_SCOPES: list[str] = []
SERVER_SCOPES: list[str] = []
ROLES: list[dict] = []
