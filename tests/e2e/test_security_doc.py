#!/usr/bin/env python3
"""SECURITY.md's disclosure policy is real and stays true (issue 10): where to report (the address is
configure.ac's bug-report address, marked as a placeholder while it is one), what happens in what time
(acknowledgement, assessment, fix, disclosure, each with a number of days) and which versions get
fixes (the current release line among them)."""

import os
import re

from acedtest import SRCDIR, done, ok

with open(os.path.join(SRCDIR, "SECURITY.md")) as f:
    doc = f.read()
with open(os.path.join(SRCDIR, "configure.ac")) as f:
    m = re.search(r"AC_INIT\(\[aced\],\s*\[([^\]]+)\],\s*\[([^\]]+)\]", f.read())
version, contact = m.group(1), m.group(2)

sec = doc.split("## Reporting a vulnerability", 1)
ok(len(sec) == 2, "SECURITY.md has a 'Reporting a vulnerability' section")
policy = sec[1] if len(sec) == 2 else ""
policy = policy.split("\n## ", 1)[0]
ok("**%s**" % contact in policy, "it names the bug-report address of configure.ac (%s)" % contact)
ok(re.search(r"Security \u2192 Report a vulnerability", policy) and re.search(r"private", policy),
   "it names a private channel that needs no address: the repository's private vulnerability reporting")
where = policy.split("**What to send.**", 1)[0]
ok(where.find("Report a vulnerability") < where.find("**%s**" % contact),
   "the private reporting form comes first, the address second")
if re.search(r"\.(invalid|example|test|localhost)$", contact) or "example" in contact:
    # a reserved domain never delivers: the text must say so and send reporters to the form
    ok(re.search(r"placeholder", policy) and re.search(r"Maintainers", policy) and
       re.search(r"never delivers", policy) and re.search(r"reporting above is the\s+channel", policy),
       "a placeholder address (%s) is marked as one, and the form is named the channel until it is replaced"
       % contact)
for what, pat in (("acknowledgement", r"within (\d+) days?\s*\|\s*an acknowledgement"),
                  ("first assessment", r"within (\d+) days?\s*\|\s*a first assessment"),
                  ("fixed release", r"within\s+(\d+)\s+days\s+for\s+critical"),
                  ("disclosure deadline", r"publish\s+(\d+)\s+days\s+after")):
    mm = re.search(pat, policy)
    ok(mm is not None and 0 < int(mm.group(1)) <= 120, "it promises the %s within a stated number of days (%s)"
       % (what, mm.group(1) if mm else "none"))
line = ".".join(version.split(".")[:2]) + ".x"
ok(re.search(r"\|\s*%s[^|]*\|\s*yes" % re.escape(line), policy) is not None,
   "its supported-versions table covers the current release line %s (configure.ac: %s)" % (line, version))
done()
