"""What `doctor` prints: one Finding a line, each with the fix when something is wrong.

Its own module so that every check (helper/setup/doctor.py, doctor_jenkins.py) imports it
and none imports another: no circle of imports.
"""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class Finding:
    level: str  # OK, WARN (a deploy still works) or FAIL (a deploy would break)
    subject: str  # "hook web-asg/deploy-on-launch", "queue hooks", "jenkins", ...
    text: str
    fix: str | None = None

    def line(self) -> str:
        fix = f" — {self.fix}" if self.fix and self.level != OK else ""
        # One line whatever a server put in its error message.
        return " ".join(f"{self.level} {self.subject} {self.text}{fix}".split())
