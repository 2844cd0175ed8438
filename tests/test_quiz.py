"""The review quiz: answers folded away until asked for, or checked on demand."""

from __future__ import annotations

from labkit import quiz


def test_there_are_five_questions_each_with_its_answer_among_the_choices() -> None:
    assert [q.number for q in quiz.QUESTIONS] == [1, 2, 3, 4, 5]
    assert all(q.answer in q.choices for q in quiz.QUESTIONS)


def test_asking_does_not_print_the_answer() -> None:
    question = quiz.ask(1)
    assert question.why not in str(question)
    page = question._repr_html_()
    assert page.index("<details>") < page.index("the metadata service (169.254.169.254)")


def test_checking_an_answer() -> None:
    assert quiz.check(3, "a").right and str(quiz.check(3, "(A)")).startswith("✓ Right.")
    assert str(quiz.check(3, "b")) == "✗ Not (b). Think again, or open the answer under the question."
    assert str(quiz.check(3, "z")) == "Choose one of a, b, c, d for question 3."
