"""`/hub/oauth_callback` of the OIDC login: finish the login, send a person without a project
to the ask-for-access page, or show a refusal in the hub's look (never a traceback)."""

from __future__ import annotations

import re
import secrets

from jupyterhub.utils import url_path_join
from oauthenticator.oauth2 import OAuthCallbackHandler, _deserialize_state

from naic.hub.identity import access
from naic.hub.identity.claims import NeedsAccess, Refusal, refusal


class NaicCallbackHandler(OAuthCallbackHandler):
    """`/hub/oauth_callback`: finish the login, or show why not, in the hub's look."""

    def check_error(self) -> None:
        error = self.get_argument("error", "")
        if error:
            provider = self.authenticator.login_service
            if error == "access_denied":
                raise refusal("cancelled", provider=provider)
            code = error if re.match(r"^[a-z_]{1,40}$", error) else "an unknown error"
            raise refusal("provider_error", provider=provider, error=code)

    def check_code(self) -> None:
        if not self.get_argument("code", ""):
            raise refusal("no_code", provider=self.authenticator.login_service)

    def check_state(self) -> None:
        cookie_state = self.get_state_cookie()
        url_state = self.get_argument("state", "")
        cookie_id = _deserialize_state(cookie_state).get("state_id") if cookie_state else None
        url_id = _deserialize_state(url_state).get("state_id") if url_state else None
        if not cookie_id or not url_id or not secrets.compare_digest(str(cookie_id), str(url_id)):
            self.log.warning("OIDC login refused: OAuth state missing or mismatched")
            raise refusal("state")

    async def get(self) -> None:
        try:
            self.check_arguments()
            user = await self.login_user()
            if user is None:  # `authenticate` refuses with a reason; this is unexpected
                raise refusal("internal")
        except NeedsAccess as need:
            self.log.info(
                "OIDC login of %s (%s): no project, asked to request access",
                need.identity,
                need.username,
            )
            access.remember_asker(self, need.identity, need.username)
            await access.render_ask_page(self, need.identity, need.username, status=403)
            return
        except Refusal as r:
            await self._refuse(r)
            return
        except Exception:
            self.log.exception("OIDC login failed")
            await self._refuse(refusal("internal"))
            return
        self.redirect(self.get_next_url(user))

    async def _refuse(self, r: Refusal) -> None:
        self.log.warning("OIDC login refused (%s): %s", r.kind, r)
        self.set_status(r.status)
        html = await self.render_template(
            "naic-refused.html",
            message=str(r),
            kind=r.kind,
            again_url=url_path_join(self.hub.base_url, "login"),
        )
        self.finish(html)
