"""What the identity room adds to the hub: access requests (asking for a project, and an
admin's decision). Logins come through the authenticator (naic.hub.identity.oidc)."""

from naic.hub.identity import access

HANDLERS = access.HANDLERS
SCOPES: dict = {}
USER_SCOPES: list[str] = []
SERVER_SCOPES: list[str] = []
ROLES: list[dict] = []
