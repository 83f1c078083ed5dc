"""What the usage room adds to the hub: budget and usage pages and API, and who may read them."""

from naic.hub.usage.accounting import (
    ADMIN_USAGE_PATH,
    USAGE_PATH,
    AdminUsageHandler,
    UsageHandler,
)

HANDLERS = [(USAGE_PATH, UsageHandler), (ADMIN_USAGE_PATH, AdminUsageHandler)]
#: Custom scopes (JupyterHub requires the `custom:` prefix); filters such as `!user` apply.
SCOPES = {
    "custom:naic:usage:read": {
        "description": "Read GPU-hour budgets, usage and access requests.",
    },
}
#: Users read their own usage; a session's server its owner's (the budget widget).
USER_SCOPES = ["custom:naic:usage:read!user"]
SERVER_SCOPES = ["custom:naic:usage:read!user"]
ROLES: list[dict] = []
