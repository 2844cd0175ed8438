"""The review questions of notebook 06, with answers revealed or checked on demand.

from labkit import quiz
quiz.ask(1)            # the question and its choices; the answer stays folded until clicked
quiz.check(1, "b")     # ✓ or ✗, with the reason
"""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    number: int
    text: str
    choices: dict[str, str]
    answer: str
    why: str

    def __str__(self) -> str:
        lines = [f"Question {self.number}. {self.text}"]
        lines += [f"  ({letter}) {choice}" for letter, choice in self.choices.items()]
        lines.append(f"Check yourself: quiz.check({self.number}, LETTER), or open the answer in JupyterLab.")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        choices = "".join(f"<li><b>({k})</b> {html.escape(v)}</li>" for k, v in self.choices.items())
        return (
            f"<p><b>Question {self.number}.</b> {html.escape(self.text)}</p><ul style='list-style:none'>{choices}</ul>"
            f"<details><summary>Show the answer</summary><p><b>({self.answer})</b> {html.escape(self.why)}</p>"
            "</details>"
        )


@dataclass(frozen=True)
class Verdict:
    right: bool
    text: str

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


QUESTIONS = (
    Question(
        1,
        "An application on an EC2 instance with an IAM role calls AWS. Where do its credentials come from?",
        {
            "a": "From ~/.aws/credentials, which AWS writes when the role is attached",
            "b": "From the instance metadata service, as temporary credentials that AWS rotates",
            "c": "From environment variables set at launch",
            "d": "From the instance's key pair",
        },
        "b",
        "The SDKs and the CLI ask the metadata service (169.254.169.254) for the role's temporary credentials "
        "(an ASIA… key, a session token and an Expiration); new ones are available before the old ones expire.",
    ),
    Question(
        2,
        "Why is a role better than running `aws configure` with an access key on the instance?",
        {
            "a": "It is faster",
            "b": "Access keys do not work on EC2",
            "c": "No long-lived secret is stored on the instance: the credentials are temporary and rotated",
            "d": "A role gives the instance administrator access",
        },
        "c",
        "An access key in ~/.aws/credentials never expires, can be read by anyone who logs in or copies the disk, and "
        "works from anywhere until someone deactivates it. A role's credentials expire within hours and are replaced "
        "automatically.",
    ),
    Question(
        3,
        "How many IAM roles can an EC2 instance hold at the same time?",
        {
            "a": "One, through one instance profile; you can replace it, and the role can have several policies",
            "b": "Up to five",
            "c": "As many as its instance profiles",
            "d": "None while it runs: roles are chosen at launch only",
        },
        "a",
        "An instance has at most one instance profile, and a profile holds one role; a second association is "
        "IncorrectState. To give more permissions, attach more policies to that role, or replace the association.",
    ),
    Question(
        4,
        "You detach IAMReadOnlyAccess from the role of a running instance. What happens?",
        {
            "a": "Nothing until the instance is rebooted",
            "b": "Nothing until its current credentials expire",
            "c": "Its next calls are denied: permissions are checked on every request (after a short propagation)",
            "d": "The instance is stopped",
        },
        "c",
        "The credentials stay the same, but every request is checked against the role's policies as they are now, so "
        "the change applies within seconds on AWS (at once in the lab), with no reboot.",
    ),
    Question(
        5,
        "What does IMDSv2 add to the metadata service?",
        {
            "a": "Encryption of the credentials",
            "b": "A session token from a PUT request, which blocks most SSRF and proxy attacks; you can require it",
            "c": "Longer-lived credentials",
            "d": "Access from outside the instance",
        },
        "b",
        "A caller must first PUT /latest/api/token (with a TTL header) and send the token with every request. "
        "Requests forwarded by proxies (X-Forwarded-For) get no token; with HttpTokens=required, IMDSv1 requests get "
        "401.",
    ),
)


def ask(number: int) -> Question:
    """Question `number` (1 to 5), to display."""
    return QUESTIONS[number - 1]


def check(number: int, choice: str) -> Verdict:
    """Whether `choice` is the answer to question `number`, and why."""
    question = ask(number)
    picked = choice.strip().strip("()").lower()
    if picked not in question.choices:
        return Verdict(False, f"Choose one of {', '.join(question.choices)} for question {number}.")
    if picked == question.answer:
        return Verdict(True, f"✓ Right. {question.why}")
    return Verdict(False, f"✗ Not ({picked}). Think again, or open the answer under the question.")
