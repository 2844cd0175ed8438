"""tests/sanitize.cfg replaces only what is random, and all of it: checked on the committed notebooks.

nbval (`make test`) compares each committed output with a fresh run after applying every rule of
sanitize.cfg to both, in order. A rule that matches more than its random part makes nbval blind to
what it swallows: with one rule's regex broadened to `\\w+`, a committed `401` turned into `200`
passed every notebook check. So each rule is described here (what it may match, an example, what
the example becomes), and applied, as nbval applies it, to every output nbval compares.
"""

from __future__ import annotations

import configparser
import copy
import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from moto.sts.utils import random_session_token
from nbval.plugin import IPyNbCell, coalesce_streams, get_sanitize_patterns, transform_streams_for_comparison

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "sanitize.cfg"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
# What nbval 0.11 leaves out of the comparison (IPyNbFile.skip_compare, without --nbdime).
NOT_COMPARED = {
    "metadata",
    "traceback",
    "prompt_number",
    "output_type",
    "name",
    "execution_count",
    "application/vnd.jupyter.widget-view+json",
    "image/png",
    "image/jpeg",
}
B64 = "A-Za-z0-9+/"
METER_LINE = r"[ \d.kMG]+(?: +(?:--:--:--|\d+:\d\d:\d\d)){3} +[\d.kMG]+"


@dataclass(frozen=True)
class Rule:
    """What a rule of sanitize.cfg may match, tried where a match starts in the text: it must end
    exactly where the match ends (lookarounds see the text on both sides, so a rule may not cut a
    piece out of a longer word). `example` becomes `becomes` under the rule."""

    short: str
    matches: str
    example: str
    becomes: str


RULES = {
    "timestamps": Rule(
        "timestamps",
        r"(?<![\d:.])20\d\d-[01]\d-[0-3]\d[T ][0-2]\d:[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]\d\d:?\d\d)?(?![\d:.])",
        "AKIAUXVIHELA2RDV55FH Active created 2026-11-29 17:25:01.248471+00:00 expires 2026-11-29T23:25:13Z\n",
        "AKIAUXVIHELA2RDV55FH Active created TIMESTAMP expires TIMESTAMP\n",
    ),
    "access key ids: never seeded, so that no two labs share a key": Rule(
        "key-ids",
        r"(?<![A-Za-z0-9])(AKIA|ASIA)[A-Z2-7]{16}(?![A-Za-z0-9])",
        "$ aws configure set aws_access_key_id AKIAOXHDHCJKEW3J7H33\n'AccessKeyId': 'ASIAHHJG2MXEOR2KARC6'",
        "$ aws configure set aws_access_key_id AKIAKEYID\n'AccessKeyId': 'ASIAKEYID'",
    ),
    "secret access keys: never seeded either": Rule(
        "secrets",
        rf"(aws_secret_access_key( = | )|SecretAccessKey(\" : \"|&quot; : &quot;))[{B64}]{{40}}(?![{B64}])",
        'aws_secret_access_key = bldl+pannDVWjgrRVxqGqJOm9KdU7xv1rsSsh5o9\n"SecretAccessKey" : '
        '"UgJdZOrRFkEIeGtpohMnCZ9xXUNHVskN0p63IwKu",',
        'aws_secret_access_key = SECRET\n"SecretAccessKey" : "SECRET",',
    ),
    "session tokens: os.urandom in moto's STS": Rule(
        "session-tokens",
        # moto's random_session_token: its prefix, then the rest of 266 random bytes in base64
        rf"FQoGZXIvYXdzEBYaD[{B64}]{{338}}=(?![{B64}=])",
        f'"Token" : "{random_session_token()}",',
        '"Token" : "SESSION-TOKEN",',
    ),
    "curl's progress meter: its speeds and times": Rule(
        "curl-meter",
        r"% Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n"
        r" {33}Dload  Upload   Total   Spent    Left  Speed\n"
        rf"(?:{METER_LINE}\n)*{METER_LINE}(?![^\n<])",  # a meter line ends the line, or its markup
        "$ TOKEN=$(curl -X PUT ...)\n"
        "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n"
        "                                 Dload  Upload   Total   Spent    Left  Speed\n"
        "100    52  100    52    0     0   9297      0 --:--:-- --:--:-- --:--:-- 10400\n"
        "$ curl -H ...\n",
        "$ TOKEN=$(curl -X PUT ...)\n  CURL-PROGRESS-METER\n$ curl -H ...\n",
    ),
    "the last four characters of a key, as `aws configure list` shows them": Rule(
        "last-four",
        rf"(?<![*{B64}])\*{{16}}[{B64}]{{4}}(?![{B64}])",
        "access_key     ****************7ZML         iam-role    \n"
        "secret_key     ****************d+jU         iam-role    \n",
        "access_key     ****************LAST         iam-role    \n"
        "secret_key     ****************LAST         iam-role    \n",
    ),
    "EC2's encoded authorization messages: a random nonce, sealed under a key drawn when the lab starts": Rule(
        "encoded-messages",
        # labkit/labprocess/motofixes/authorization.py's seal: URL-safe base64 without padding
        r"Encoded authorization failure message: [A-Za-z0-9_-]{40,}(?![A-Za-z0-9_-])",
        "because no identity-based policy allows the iam:PassRole action. Encoded authorization failure message: "
        "V3q_8mCEIrXkAz-dG5o0h1J9pLwYTnRsUbQeKfHcMiyZaD2t7x4gB6vN",
        "because no identity-based policy allows the iam:PassRole action. Encoded authorization failure message: "
        "ENCODED-MESSAGE",
    ),
}
BY_RULE = pytest.mark.parametrize("section", list(RULES), ids=[r.short for r in RULES.values()])

# Rules that match nothing in any committed output change no comparison nbval makes: dead. None is.
MATCH_NOTHING: set[str] = set()

# What a rule may take beyond its random part, right after it (the curl rule once took the `</span>`
# closing curl's stderr colour in text/html). Nothing.
TAKES_MORE: dict[str, str] = {}

# What the lesson is about must survive sanitizing, wherever an output shows it.
LESSON = [
    r"\b401\b",
    r"\b403\b",
    r"\b200\b",
    "Unable to locate credentials",
    "AccessDenied",
    "InvalidClientTokenId",
    "IncorrectState",
    "UnauthorizedOperation",
    r"iam:PassRole\b",
    r"\[exit status 255\]",
    r"\bi-[0-9a-f]{17}\b",
    "DemoRoleForEC2",
    "DemoEC2ReadOnlyRole",
    "IAMReadOnlyAccess",
    "assumed-role/",
    r"\bapp-user\b",
    r"\balice\b",
    r"\b(shared-credentials-file|iam-role)\b",
]
SHOWN_NOWHERE = {r"\b200\b"}  # curl -s prints the body, not the status, on success


def sections() -> list[tuple[str, str, str]]:
    """(section, regex, replace) in the order of the file, read as an INI file."""
    parser = configparser.ConfigParser(interpolation=None, delimiters=(":",), comment_prefixes=("#",))
    parser.read_string(CONFIG.read_text())
    for name in parser.sections():
        assert set(parser[name]) == {"regex", "replace"}, name
    return [(name, parser[name]["regex"], parser[name]["replace"]) for name in parser.sections()]


def nbval_sanitize(text: str) -> str:
    """nbval's own IPyNbCell.sanitize, with the patterns as nbval reads them from sanitize.cfg."""
    patterns = OrderedDict(get_sanitize_patterns(CONFIG.read_text()))
    return str(IPyNbCell.sanitize(SimpleNamespace(parent=SimpleNamespace(sanitize_patterns=patterns)), text))


def compared() -> list[tuple[str, str]]:
    """Every string nbval sanitizes and compares in the committed outputs, with where it is."""
    found = []
    for path in NOTEBOOKS:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type != "code":
                continue
            outputs = transform_streams_for_comparison(coalesce_streams(copy.deepcopy(cell.outputs)))
            for output in outputs:
                for key, value in output.items():
                    values = value.items() if key == "data" else [(key, value)]
                    for kind, text in values:
                        if kind not in NOT_COMPARED and isinstance(text, str):
                            found.append((f"{path.name} cell {index} {kind}", text))
    return found


def judged(section: str, regex: str, text: str) -> list[tuple[str, str]]:
    """Each match of a rule in `text`, and whether it is exactly what RULES says the rule may match
    ("named"), that and the reported TAKES_MORE right after it ("takes more"), or not ("NOT NAMED")."""
    described = re.compile(RULES[section].matches) if section in RULES else None
    verdicts = []
    for match in re.finditer(regex, text):
        named = described.match(text, match.start()) if described else None
        beyond = text[named.end() : match.end()] if named and named.end() <= match.end() else "NOT NAMED"
        verdict = "named" if beyond == "" else "takes more" if beyond == TAKES_MORE.get(section) else "NOT NAMED"
        verdicts.append((verdict, match.group(0)))
    return verdicts


@cache
def sanitized() -> tuple[dict[str, list[tuple[str, str, str]]], list[tuple[str, str, str]]]:
    """Apply the rules in order, as nbval does: each rule's matches (where, verdict, text), and
    each compared string raw and sanitized."""
    matches: dict[str, list[tuple[str, str, str]]] = {name: [] for name, _, _ in sections()}
    texts = []
    for where, raw in compared():
        text = raw
        for name, regex, replace in sections():
            matches[name] += [(where, verdict, found) for verdict, found in judged(name, regex, text)]
            text = re.sub(regex, replace, text)
        texts.append((where, raw, text))
    return matches, texts


def test_every_rule_of_sanitize_cfg_is_described_here_and_read_by_nbval_as_written() -> None:
    """A new rule comes with its description in RULES; nbval reads every rule, in order, whole."""
    read = sections()
    assert [name for name, _, _ in read] == list(RULES)
    assert get_sanitize_patterns(CONFIG.read_text()) == [(regex, replace) for _, regex, replace in read]
    assert len({regex for _, regex, _ in read}) == len(read)  # nbval keys them by regex


@BY_RULE
def test_each_rule_replaces_the_random_thing_it_names(section: str) -> None:
    """Positive control, also for rules that match nothing in the committed outputs."""
    rule = RULES[section]
    regex, replace = next((r, p) for name, r, p in sections() if name == section)
    assert {verdict for verdict, _ in judged(section, regex, rule.example)} == {"named"}
    assert re.sub(regex, replace, rule.example) == rule.becomes


@BY_RULE
def test_each_rule_matches_only_what_it_names_in_the_committed_outputs(section: str) -> None:
    """Every match of the rule in what nbval compares is exactly the random thing RULES describes.

    Guards against a rule broadened to match every word: in tests/sanitize.cfg, under
    `[the lab's loopback ports]`, `regex: 127\\.0\\.0\\.1:\\d+` replaced by `regex: \\w+` (or any
    rule's regex replaced by `\\w+`): nbval then passes a committed `401` turned into `200`."""
    matches, _ = sanitized()
    wrong = [(where, found) for where, verdict, found in matches[section] if verdict == "NOT NAMED"]
    assert wrong == [], f"{len(wrong)} of {len(matches[section])} matches are not what the rule names: {wrong[:3]}"
    assert any(verdict == "takes more" for _, verdict, _ in matches[section]) == (section in TAKES_MORE), (
        "update TAKES_MORE"
    )
    assert bool(matches[section]) == (section not in MATCH_NOTHING), "update MATCH_NOTHING"


def test_sanitizing_keeps_everything_the_lesson_shows() -> None:
    """In every output nbval compares, the status codes, error codes, ids and names the lesson is
    about appear as often after sanitizing as before: no rule swallows them (see the test above
    for the mutation this guards against)."""
    _, texts = sanitized()
    assert [where for where, raw, text in texts if text != nbval_sanitize(raw)] == []  # as nbval does
    lost = [
        (where, token, len(re.findall(token, raw)), len(re.findall(token, text)))
        for where, raw, text in texts
        for token in LESSON
        if re.findall(token, text) != re.findall(token, raw)
    ]
    assert lost == [], f"{len(lost)} times (where, what, shown before, after), e.g. {lost[:6]}"
    shown = {token for token in LESSON if any(re.search(token, raw) for _, raw, _ in texts)}
    assert shown == set(LESSON) - SHOWN_NOWHERE
