"""The review quiz: every lesson point asked once, no giveaway answers, a reason for every choice."""

from __future__ import annotations

import html
import re
from collections import Counter

import pytest

import labkit
from labkit import quiz
from labkit.errors import LabError, QuestionNotFound

# The lesson's points, each with a term the question that asks it cannot do without.
KEY_TERMS = {
    1: "~/.aws/credentials",  # never `aws configure` long-term keys on an instance
    2: "169.254.169.254",  # role credentials from the metadata service, temporary and rotated
    3: "ec2.amazonaws.com",  # the trust policy
    4: "add-role-to-instance-profile",  # the instance profile carries the role
    5: "AssociateIamInstanceProfile",  # at launch or on a running instance, no reboot
    6: "IncorrectState",  # one role per instance
    7: "IAMReadOnlyAccess",  # policy changes apply on the next request
    8: "aws configure list",  # the credential provider chain
    9: "X-Forwarded-For",  # IMDSv2
    10: "list-attached-role-policies",  # the metadata service never shows the policies
    11: "AmazonSSMManagedInstanceCore",  # least privilege with managed policies
    12: "169.254.170.2",  # Lambda and ECS
    13: "iam:PassedToService",  # iam:PassRole, asked of whoever gives the role to an instance
    14: "aws:TokenIssueTime",  # a leaked role session, revoked
    15: "permissions boundary",  # a boundary limits, never grants
}
LETTERS = ["a", "b", "c", "d"]
BY_QUESTION = pytest.mark.parametrize("question", quiz.QUESTIONS, ids=[f"q{q.number}" for q in quiz.QUESTIONS])
WRONG = [(q, letter) for q in quiz.QUESTIONS for letter in LETTERS if letter != q.answer]
BY_WRONG_CHOICE = pytest.mark.parametrize("question, letter", WRONG, ids=[f"q{q.number}{x}" for q, x in WRONG])


def everything_said(question: quiz.Question) -> str:
    return " ".join([question.text, *question.choices.values(), question.why, *question.why_not.values()])


def test_there_are_at_least_eight_questions_numbered_from_one() -> None:
    numbers = [q.number for q in quiz.QUESTIONS]
    assert len(numbers) >= 8
    assert numbers == list(range(1, len(numbers) + 1))


def test_count_is_the_number_of_questions() -> None:
    assert quiz.count() == len(quiz.QUESTIONS)


def test_the_quiz_names_the_fifteen_points_of_the_lesson() -> None:
    assert sorted(quiz.POINTS) == sorted(KEY_TERMS)


def test_every_lesson_point_is_asked_by_exactly_one_question() -> None:
    asked = Counter(point for q in quiz.QUESTIONS for point in q.points)
    assert asked == dict.fromkeys(KEY_TERMS, 1)


@BY_QUESTION
def test_each_question_speaks_of_the_points_it_claims(question: quiz.Question) -> None:
    assert question.points
    assert all(KEY_TERMS[point] in everything_said(question) for point in question.points)


@BY_QUESTION
def test_each_question_offers_a_to_d_with_its_answer_among_them(question: quiz.Question) -> None:
    assert list(question.choices) == LETTERS
    assert question.answer in question.choices


def test_the_right_answer_is_the_strictly_longest_option_in_at_most_a_quarter_of_the_questions() -> None:
    def strictly_longest(q: quiz.Question) -> bool:
        return all(len(q.choices[q.answer]) > len(text) for letter, text in q.choices.items() if letter != q.answer)

    giveaways = [q.number for q in quiz.QUESTIONS if strictly_longest(q)]
    assert len(giveaways) <= len(quiz.QUESTIONS) / 4, giveaways


def test_no_letter_is_the_answer_of_more_than_half_the_questions() -> None:
    letter, times = Counter(q.answer for q in quiz.QUESTIONS).most_common(1)[0]
    assert times <= len(quiz.QUESTIONS) / 2, letter


@BY_QUESTION
def test_every_wrong_option_has_a_reason_and_the_right_one_its_why(question: quiz.Question) -> None:
    assert sorted(question.why_not) == [letter for letter in LETTERS if letter != question.answer]
    assert all(reason.strip() for reason in question.why_not.values())
    assert question.why.strip()


@BY_QUESTION
def test_checking_the_right_answer_says_so_and_why(question: quiz.Question) -> None:
    verdict = quiz.check(question.number, question.answer)
    assert verdict.right
    assert str(verdict) == f"✓ Right. {question.why}"


@BY_WRONG_CHOICE
def test_checking_a_wrong_answer_gives_that_options_reason_and_sends_back_to_the_question(
    question: quiz.Question, letter: str
) -> None:
    verdict = quiz.check(question.number, letter)
    assert not verdict.right
    assert str(verdict) == (
        f"✗ Not ({letter}). {question.why_not[letter]} Read question {question.number} again "
        f"(quiz.ask({question.number})) and try another letter, or open the answer under it."
    )


@BY_WRONG_CHOICE
def test_a_wrong_answers_reason_does_not_give_the_right_one_away(question: quiz.Question, letter: str) -> None:
    text = str(quiz.check(question.number, letter))
    assert f"({question.answer})" not in text
    assert question.choices[question.answer] not in text


def test_a_letter_may_be_written_in_capitals_brackets_or_spaces() -> None:
    assert [quiz.check(6, spelled).right for spelled in ["c", "C", "(c)", " (C) "]] == [True] * 4


def test_an_unknown_letter_asks_for_one_of_the_choices() -> None:
    verdict = quiz.check(3, "z")
    assert not verdict.right
    assert str(verdict) == "Choose one of a, b, c, d for question 3."


@pytest.mark.parametrize("number", [0, -1, len(quiz.QUESTIONS) + 1, 99])
def test_asking_a_question_out_of_range_names_the_questions_there_are(number: int) -> None:
    last = quiz.count()
    message = f"There is no question {number}; the questions are 1 to {last}: quiz.ask(1) … quiz.ask({last})."
    with pytest.raises(QuestionNotFound, match=f"^{re.escape(message)}$"):
        quiz.ask(number)


def test_checking_a_question_out_of_range_names_the_questions_there_are() -> None:
    last = quiz.count()
    message = f"There is no question {last + 1}; the questions are 1 to {last}: quiz.ask(1) … quiz.ask({last})."
    with pytest.raises(QuestionNotFound, match=f"^{re.escape(message)}$"):
        quiz.check(last + 1, "a")


@pytest.mark.parametrize("number", ["3", 2.0, True, None])
def test_a_question_number_that_is_not_a_whole_number_is_refused_by_name(number: object) -> None:
    message = f"A question number is a whole number, not {number!r}; the questions are 1 to {quiz.count()}:"
    with pytest.raises(QuestionNotFound, match=f"^{re.escape(message)}"):
        quiz.ask(number)  # type: ignore[arg-type]


def test_question_not_found_is_a_lab_error_and_a_lookup_error_exported_by_labkit() -> None:
    assert issubclass(QuestionNotFound, LabError) and issubclass(QuestionNotFound, LookupError)
    assert labkit.QuestionNotFound is QuestionNotFound and "QuestionNotFound" in labkit.__all__


@BY_QUESTION
def test_asking_shows_the_choices_but_no_reason(question: quiz.Question) -> None:
    shown = str(quiz.ask(question.number))
    assert all(f"({letter}) {text}" in shown for letter, text in question.choices.items())
    assert question.why not in shown
    assert not [reason for reason in question.why_not.values() if reason in shown]


@BY_QUESTION
def test_the_html_folds_the_answer_and_why_each_other_option_is_wrong(question: quiz.Question) -> None:
    page = question._repr_html_()
    folded = page.index("<details><summary>Show the answer</summary>")
    assert page.index(f"<b>({question.answer})</b> {html.escape(question.why)}") > folded
    for letter, reason in question.why_not.items():
        assert page.index(f"<b>({letter})</b> {html.escape(reason)}") > folded
