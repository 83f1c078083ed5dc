"""What the workshops room adds to the hub: its API and pages (below the hub's prefix,
`/hub/`), its scope and the instructor role."""

from naic.hub.workshops.api import ApproveHandler, CodeHandler, JoinHandler, WorkshopsHandler
from naic.hub.workshops.assignment_api import HANDLERS as ASSIGNMENT_HANDLERS
from naic.hub.workshops.assignment_api import SCOPE as ASSIGNMENTS_SCOPE
from naic.hub.workshops.base import SCOPE
from naic.hub.workshops.check import CheckHandler, TryHandler
from naic.hub.workshops.edit_api import EditableWorkshopHandler, StudentHandler
from naic.hub.workshops.ending import ReportHandler, ReportPage
from naic.hub.workshops.material import MaterialHandler
from naic.hub.workshops.pages import DashboardPage, GuestLoginPage, JoinPage
from naic.hub.workshops.resets import AccountsHandler
from naic.hub.workshops.rules import INSTRUCTORS_GROUP
from naic.hub.workshops.staff_api import OpenHandler, StaffHandler

HANDLERS = [
    (r"/naic/workshops/join", JoinPage),
    (r"/naic/workshops/login", GuestLoginPage),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/accounts", AccountsHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/code", CodeHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/approve", ApproveHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/check", CheckHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/try", TryHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/staff", StaffHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/material", MaterialHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/report", ReportHandler),
    (
        r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/students/([a-z0-9][a-z0-9._@-]{0,99})",
        StudentHandler,
    ),
    *ASSIGNMENT_HANDLERS,
    (r"/naic/workshops/([a-z][a-z0-9_-]{0,39})/open/([a-z0-9][a-z0-9._@-]{0,99})", OpenHandler),
    (r"/naic/workshops/([a-z][a-z0-9_-]{0,39})/report.csv", ReportPage),
    (r"/naic/workshops", DashboardPage),
    (r"/naic/workshops/([a-z][a-z0-9_-]{0,39})", DashboardPage),
    (r"/api/naic/workshops", WorkshopsHandler),
    (r"/api/naic/workshops/join", JoinHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})", EditableWorkshopHandler),
]
SCOPES = {
    SCOPE: {
        "description": "Create workshops and manage one's own workshops and their students.",
    },
    ASSIGNMENTS_SCOPE: {
        "description": "Fetch and submit one's workshop assignments; collect them as staff.",
    },
}
ROLES = [
    {
        "name": "instructor",
        "description": "Runs workshops: creates them and manages their own students.",
        "scopes": ["self", SCOPE],
        "groups": [INSTRUCTORS_GROUP],
    }
]
#: Who is a student or staff comes from the hub's records (naic.hub.workshops.assignment_api);
#: a user's tokens and a session's own token act on assignments for that user only.
USER_SCOPES = [f"{ASSIGNMENTS_SCOPE}!user"]
SERVER_SCOPES = [f"{ASSIGNMENTS_SCOPE}!server"]
