"""Pure parts of workshop staff and of students without a project: the join code a login's
next URL carries, the staff groups' names, `naic workshop staff`'s options, and that a user
in no project may start only a workshop's session."""

from __future__ import annotations

import argparse

import pytest

from naic.hub.workshops import cli
from naic.hub.workshops.entry import code_in
from naic.hub.workshops.staff import group_name
from naic.spawners.request import RequestError, UserFacts, parse_request
from tests.unit.examples import TC


def test_the_join_links_code_is_read_from_the_next_url_of_this_hub_only() -> None:
    assert code_in("/hub/naic/workshops/join?code=ABCDE-FGHJK", "/hub/") == "ABCDE-FGHJK"
    assert code_in("/hub/naic/workshops/join/?code=abcde", "/hub/") == "abcde"
    assert code_in("/base/hub/naic/workshops/join?code=X", "/base/hub/") == "X"
    assert code_in("/hub/naic/workshops/join", "/hub/") is None
    assert code_in("/hub/home?code=ABCDE-FGHJK", "/hub/") is None
    assert code_in("https://evil.example/hub/naic/workshops/join?code=X", "/hub/") is None
    assert code_in("//evil.example/hub/naic/workshops/join?code=X", "/hub/") is None
    assert code_in("", "/hub/") is None


def test_each_workshop_has_its_own_groups() -> None:
    assert group_name("ml-intro") == "workshop-ml-intro"
    assert group_name("ml-intro", "ta") == "workshop-ml-intro-tas"
    assert group_name("ml-intro", "co-instructor") == "workshop-ml-intro-co-instructors"


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["workshop", *argv])


def test_staff_options_on_create_and_staff() -> None:
    args = _parse("create", "w", "--seats", "2", "--start", "2027-01-20T09:00Z",
                  "--end", "2027-01-20T16:00Z", "--resource", "s:r", "--hours", "1",
                  "--ta", "per", "--ta", "pia", "--co-instructor", "kari")  # fmt: skip
    assert cli.spec_of(args)["staff"] == {"co-instructor": ["kari"], "ta": ["per", "pia"]}
    plain = _parse("create", "w", "--seats", "2", "--start", "2027-01-20T09:00Z",
                   "--end", "2027-01-20T16:00Z", "--resource", "s:r", "--hours", "1")  # fmt: skip
    assert "staff" not in cli.spec_of(plain)
    change = cli.staff_change(
        _parse("staff", "w", "--add-ta", "per", "--remove-co-instructor", "k")
    )
    assert change == {"add": {"ta": ["per"]}, "remove": {"co-instructor": ["k"]}}
    opened = {"at": "2027-01-20T10:00:00Z", "staff": "per", "student": "ola", "server": "w"}
    shown = cli.describe_staff({"co-instructor": [], "ta": ["per"], "access": [opened]})
    assert "TAs:            per" in shown and "per opened ola's session" in shown


def test_a_user_in_no_project_with_an_institutional_login_starts_no_plain_session() -> None:
    options = {"site": "local"}  # a local session needs no project on a dev login
    assert parse_request(options, TC, UserFacts(name="ola")).project is None
    with pytest.raises(RequestError, match="only your workshop's session"):
        parse_request(options, TC, UserFacts(name="ola", needs_project=True))
    # A member is not held back.
    assert parse_request(options, TC, UserFacts(name="alice", needs_project=True))
