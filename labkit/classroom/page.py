"""The class page's HTML and CSV, from the students' rows (labkit/classroom/gather.py): pure functions,
server-rendered, no external resources (nothing leaves the machine), a few lines of JavaScript.

    rows = [row(student) for student in students]
    html = class_html(rows, group="class", timeout=3.0, xsrf="…", checkpoints=["01", …], done=[])
    text = class_csv(rows, notebooks=["00", …])
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from labkit.catalogue import CHALLENGE
from labkit.classroom.gather import ResetDone, StudentLab

TRUST = "Each row is what that student's own server reports: it runs their code, so they could make it say anything."
SERVER_WORDS = {
    "running": "running",
    "stopped": "stopped",
    "pending": "pending",
    "slow": "slow: no answer in time",
    "error": "error",
}


@dataclass(frozen=True)
class ChallengeGrade:
    """Notebook 07 as the student's lab last graded it (labkit/challenge/record.py `last_grade`)."""

    graded_at: str | None  # None: never graded since the last reset (hints may have been asked)
    missing: tuple[str, ...]  # the items that did not hold
    hints: int  # hints shown, kept across resets

    @property
    def ok(self) -> bool:
        return self.graded_at is not None and not self.missing


NOT_GRADED = ChallengeGrade(None, (), 0)  # what a lab whose report has "challenge": null says


@dataclass(frozen=True)
class Row:
    """One student as the page shows them, in words."""

    name: str
    server: str  # running, stopped, pending, slow, error
    server_note: str
    lab: str  # "running", "stopped", "—" (unknown), with how it is sealed and whether it was restored
    lab_note: str
    finished: str  # "notebooks 00-03", "the series", "nothing yet", or "" when unknown
    furthest: str  # "03", or ""
    notebooks: dict[str, tuple[bool, list[str]]]  # "01": (done, missing items); empty when unknown
    last_activity: str
    challenge: ChallengeGrade | None = None  # notebook 07; None when unknown (no lab running, no answer)


def row(student: StudentLab) -> Row:
    """The words for one student's server, lab and progress."""
    report = student.report or {}
    lab, lab_note = "—", ""
    if student.report is not None:
        if not report.get("running"):
            lab, lab_note = "stopped", "no lab runs: its next labkit.connect() or `labkit up` starts it"
        else:
            sealed = "sealed by the kernel" if report.get("sealed") else "sealed by environment"
            restored = "restored after a crash; " if report.get("restored") else ""
            lab = f"running, {restored}{sealed}"
            lab_note = " ".join(filter(None, [report.get("restored") or "", report.get("seal_note") or ""]))
    notebooks = {
        number: (bool(entry.get("done")), [str(item) for item in entry.get("missing", [])])
        for number, entry in (report.get("progress") or {}).items()
    }
    graded = report.get("challenge")
    challenge = (
        ChallengeGrade(graded["graded_at"], tuple(map(str, graded["missing"])), int(graded["hints"]))
        if graded
        else NOT_GRADED
    )
    return Row(
        name=student.name,
        server=student.server,
        server_note=student.note,
        lab=lab,
        lab_note=lab_note,
        finished=str(report.get("finished") or "") if report.get("running") else "",
        furthest=str(report.get("furthest") or "") if report.get("running") else "",
        notebooks=notebooks if report.get("running") else {},
        last_activity=(student.last_activity or "")[:19].replace("T", " "),
        challenge=challenge if report.get("running") else None,
    )


def _progress_cell(number: str, entry: tuple[bool, list[str]] | None) -> str:
    if entry is None:
        return '<td class="unknown">·</td>'
    done, missing = entry
    if done:
        return f'<td class="done" title="notebook {number}: done">✓<span class="sr"> done</span></td>'
    said = "missing: " + "; ".join(missing) if missing else "not done"
    return f'<td class="missing" title="{escape(said)}">✗<span class="sr"> {escape(said)}</span></td>'


def _hints(count: int) -> str:
    return f"{count} hint{'s' if count != 1 else ''}"


def _challenge_cell(grade: ChallengeGrade | None) -> str:
    """Notebook 07's cell: ✓, or how many items are missing (which ones in its title), or – when not
    graded; then the hints used ("✓ · 2 hints"), also when not graded if any were asked."""
    if grade is None:
        return '<td class="challenge unknown">·</td>'
    hints = f" · {_hints(grade.hints)}"
    if grade.graded_at is None:
        title = f"notebook {CHALLENGE}: not graded yet, {_hints(grade.hints)} asked"
        used = hints if grade.hints else ""
        return f'<td class="challenge ungraded" title="{escape(title)}">–<span class="sr"> not graded</span>{used}</td>'
    if grade.ok:
        title = escape(f"notebook {CHALLENGE}: done, graded {grade.graded_at}")
        return f'<td class="challenge done" title="{title}">✓<span class="sr"> done</span>{hints}</td>'
    title = escape("missing: " + "; ".join(grade.missing))
    return f'<td class="challenge missing" title="{title}">{len(grade.missing)} missing{hints}</td>'


def _notebook_cell(r: Row, number: str) -> str:
    if number == CHALLENGE:
        return _challenge_cell(r.challenge)
    return _progress_cell(number, r.notebooks.get(number))


def _row_html(r: Row, notebooks: Sequence[str]) -> str:
    server = escape(SERVER_WORDS.get(r.server, r.server))
    note = f'<br><small class="note">{escape(r.server_note)}</small>' if r.server_note else ""
    lab = f'<span title="{escape(r.lab_note)}">{escape(r.lab)}</span>' if r.lab_note else escape(r.lab)
    finished = f"finished {escape(r.finished)}" if r.finished else "—"
    cells = "".join(_notebook_cell(r, n) for n in notebooks)
    name = escape(r.name)
    return (
        f'<tr data-student="{name}" data-server="{escape(r.server)}" data-furthest="{escape(r.furthest)}">'
        f'<td><input type="checkbox" name="student" value="{name}" aria-label="select {name}"></td>'
        f'<th scope="row">{name}</th><td class="server {escape(r.server)}">{server}{note}</td>'
        f"<td>{lab}</td><td>{finished}</td>{cells}<td>{escape(r.last_activity) or '—'}</td>"
        f'<td><button type="submit" name="one" value="{name}">Reset {name}…</button></td></tr>'
    )


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0.5em; color: #222; }
main { display: inline-block; padding: 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
thead th { background: #f3f3f3; }
td.done { color: #17692b; text-align: center; } td.missing { color: #a3180f; text-align: center; }
td.unknown, td.ungraded { color: #999; text-align: center; } td.challenge { white-space: nowrap; }
td.server.stopped, td.server.pending { color: #6b5800; } td.server.slow, td.server.error { color: #a3180f; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
.done-list { background: #eef6ee; border: 1px solid #9c9; padding: 0.5em 1em; }
.done-list .failed { color: #a3180f; }
.actions { margin: 1em 0; } small.note { color: #555; }
"""

SCRIPT = """
document.getElementById('class-form').addEventListener('submit', function (event) {
  var one = event.submitter && event.submitter.name === 'one' ? event.submitter.value : null;
  var picked = [].slice.call(document.querySelectorAll('input[name=student]:checked')).map(function (b) {
    return b.value; });
  var who = one ? [one] : picked;
  if (!who.length) { alert('Select at least one student.'); event.preventDefault(); return; }
  var select = document.getElementById('to');
  var to = select.options[select.selectedIndex].text;
  if (!confirm('Reset the lab of ' + who.join(', ') + ' to ' + to + '? What is in it now is replaced.')) {
    event.preventDefault();
  }
});
"""


def _heading(number: str) -> str:
    if number == CHALLENGE:
        return f"notebook {number}, the challenge: ✓, or how many items are missing, and the hints used"
    return f"notebook {number}"


def class_html(
    rows: Sequence[Row],
    *,
    group: str,
    timeout: float,
    xsrf: str,
    notebooks: Sequence[str],
    checkpoints: Sequence[tuple[str, str]],
    done: Sequence[ResetDone] = (),
    seconds: float | None = None,
) -> str:
    """The whole page: what was just reset (if anything), then one row per student, a reset form."""
    heads = "".join(f'<th scope="col" title="{escape(_heading(n))}">{escape(n)}</th>' for n in notebooks)
    body = "\n".join(_row_html(r, notebooks) for r in rows) or (
        f'<tr><td colspan="{len(notebooks) + 7}">No students in the group {escape(group)} yet.</td></tr>'
    )
    options = "".join(f'<option value="{escape(v)}">{escape(label)}</option>' for v, label in checkpoints)
    results = ""
    if done:
        items = "".join(
            f'<li class="{"ok" if d.ok else "failed"}"><b>{escape(d.name)}</b>: {escape(d.said)}</li>' for d in done
        )
        results = f'<section class="done-list" role="status"><h2>Reset</h2><ul>{items}</ul></section>'
    took = f" in {seconds:.2f} s" if seconds is not None else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Labs of {escape(group)}</title>
<style>{STYLE}</style></head>
<body><main>
<h1>Every student's lab: group {escape(group)}</h1>
<p>{len(rows)} students; each server asked at once, {timeout:g} s each{took}.
<a href="class.csv" download>Download CSV</a> · <a href="">Refresh</a></p>
<p class="trust">{TRUST}</p>
{results}
<form id="class-form" method="post" action="reset">
<input type="hidden" name="_xsrf" value="{escape(xsrf)}">
<table><caption class="sr">Students of {escape(group)}: server, lab, progress per notebook</caption>
<thead><tr><th scope="col"><span class="sr">select</span></th><th scope="col">student</th>
<th scope="col">server</th><th scope="col">lab</th><th scope="col">progress</th>{heads}
<th scope="col">last activity (UTC)</th><th scope="col"><span class="sr">reset</span></th></tr></thead>
<tbody>
{body}
</tbody></table>
<p class="actions"><label for="to">Reset to</label>
<select id="to" name="to">{options}</select>
<button type="submit" name="selected" value="1">Reset selected…</button></p>
</form>
<script>{SCRIPT}</script>
</main></body></html>
"""


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a leading quote."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _challenge_csv(grade: ChallengeGrade | None) -> list[str]:
    """Notebook 07's three cells: done / missing: … / not graded; how many items are missing (a number
    a spreadsheet sorts, 0 when done); hints used. Empty when unknown."""
    if grade is None:
        return ["", "", ""]
    if grade.graded_at is None:
        return ["not graded", "", str(grade.hints)]
    said = "done" if grade.ok else "missing: " + "; ".join(grade.missing)
    return [said, str(len(grade.missing)), str(grade.hints)]


def class_csv(rows: Sequence[Row], *, notebooks: Sequence[str]) -> str:
    """One line per student: server, lab, progress, each notebook (done / missing: …), for the challenge
    (07) also how many items are missing and the hints used (07_missing, 07_hints), last activity."""
    out = io.StringIO()
    writer = csv.writer(out)
    heads = [h for n in notebooks for h in ([n, f"{n}_missing", f"{n}_hints"] if n == CHALLENGE else [n])]
    writer.writerow(["student", "server", "server_note", "lab", "finished", "furthest", *heads, "last_activity"])
    for r in rows:
        marks = []
        for n in notebooks:
            entry = r.notebooks.get(n)
            if n == CHALLENGE:
                marks += _challenge_csv(r.challenge)
            else:
                marks.append("" if entry is None else "done" if entry[0] else "missing: " + "; ".join(entry[1]))
        cells = [r.name, r.server, r.server_note, r.lab, r.finished, r.furthest, *marks, r.last_activity]
        writer.writerow([_cell(c) for c in cells])
    return out.getvalue()
