"""Notebook 07, the challenge: the student gives report-server's app a role of their own making, and
the lab grades it item by item.

    set_the_scene(lab)     # what `labkit reset --to 07` adds after replaying 01-06 (scene.py)
    grade(lab)             # `labkit check 07`: each item ✓, or why not and what to look at (grade.py)
    next_hint(home)        # `labkit hint 07`: one more hint each time, counted (hints.py)

Classroom tools, not the lesson: a student solves the challenge with boto3 cells or the terminal, as
on AWS. The grade asks the lab's AWS API as its administrator, IAM's policy simulator included, which
the lab's own evaluator answers; it reads report-server's disk from this machine for access keys.
"""

from labkit.challenge import record
from labkit.challenge.grade import grade
from labkit.challenge.hints import HINTS, hints_used, next_hint
from labkit.challenge.record import last_grade
from labkit.challenge.scene import set_the_scene

__all__ = ["HINTS", "grade", "hints_used", "last_grade", "next_hint", "record", "set_the_scene"]
