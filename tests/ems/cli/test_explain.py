"""`ems explain SESSION`: each profile sent for a session with its plan, need, limits and answer."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import RunningEms
from tests.support.delivered import plan_and_deliver
from tests.support.servers import REPO


def _explain(ems: RunningEms, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMS_DATABASE_URL": ems.ctx.settings.database_url}
    return subprocess.run(
        [sys.executable, "-m", "ems.cli", "explain", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_explain_tells_the_plan_the_need_the_limits_and_the_answer(ems: RunningEms) -> None:
    plan_id = plan_and_deliver(ems)
    explained = _explain(ems, "s1")
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout
    assert "session NL/CPO/s1" in text and "1 profile(s)" in text
    assert "CPO answered ACCEPTED" in text
    assert f"plan {plan_id} " in text and "trigger session_started" in text and "inputs digest" in text
    assert "need: 15.0 kWh (site_default)" in text  # no declaration, no history: the site's default
    assert "profile: +0s 32 A" in text
    assert "limit: connector" in text and "limit: grid connection: 43 kW" in text
    assert "limit: protection" in text
    # times in the site's zone (the office is in Paris), with the UTC that OCPI carries
    assert re.search(r"queued \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T \(\d{4}-\d\d-\d\dT[\d:.]+Z\)", text), text
    assert re.search(r"by \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T \(", text), text


def test_explain_names_what_is_wrong(ems: RunningEms) -> None:
    missing = _explain(ems, "nope")
    assert missing.returncode == 1 and "no session 'nope'" in missing.stderr
    bad = _explain(ems, "s1", "--party", "NLCPO")
    assert bad.returncode == 1 and "--party 'NLCPO'" in bad.stderr
