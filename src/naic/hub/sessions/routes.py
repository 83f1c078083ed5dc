"""What the sessions room adds to the hub: start estimates and options across sites,
extensions, batch jobs, activity reports, the culler's API, the log of a session that could
not start and the help page, with their scopes and the culler's role."""

from naic.hub.sessions.activity import HANDLERS as ACTIVITY_HANDLERS
from naic.hub.sessions.activity import SCOPE as CULL_SCOPE
from naic.hub.sessions.batch import HANDLERS as BATCH_HANDLERS
from naic.hub.sessions.batch import SCOPE as BATCH_SCOPE
from naic.hub.sessions.estimate import ESTIMATE_PATH, EstimateHandler
from naic.hub.sessions.extend import EXTEND_HANDLERS
from naic.hub.sessions.extend import SCOPE as EXTEND_SCOPE
from naic.hub.sessions.logs import LOG_PATH, SessionLogHandler
from naic.hub.sessions.options import HANDLERS as OPTIONS_HANDLERS
from naic.hub.sessions.remedies import HELP_PATH, HelpHandler

HANDLERS = [
    (ESTIMATE_PATH, EstimateHandler),
    *OPTIONS_HANDLERS,
    *EXTEND_HANDLERS,
    *ACTIVITY_HANDLERS,
    *BATCH_HANDLERS,
    (LOG_PATH, SessionLogHandler),
    (HELP_PATH, HelpHandler),
]
SCOPES = {
    EXTEND_SCOPE: {"description": "Extend running sessions within the catalogue's policy."},
    BATCH_SCOPE: {"description": "Run a session's notebooks as batch jobs and follow them."},
    CULL_SCOPE: {
        "description": "Read every running session's activity, warn sessions and stop them.",
    },
}
#: Users extend their own sessions and run their notebooks as batch jobs; a server does so
#: for itself (the session panel, `naic-batch`) and stops itself.
USER_SCOPES = [f"{EXTEND_SCOPE}!user", f"{BATCH_SCOPE}!user"]
SERVER_SCOPES = [f"{EXTEND_SCOPE}!server", f"{BATCH_SCOPE}!server", "servers!server"]
#: The culler (naic.hub.sessions.culler) is a managed service that may only read activity,
#: warn and stop sessions: it never holds the admin role.
ROLES = [{"name": "naic-culler", "scopes": [CULL_SCOPE], "services": ["naic-culler"]}]
