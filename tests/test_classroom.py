"""sftviz.classroom: a teacher's class in memory, bounded, with codes nobody can guess; and the page's handlers."""

import html

import pytest

from conftest import as_visitor
from sftviz import classroom, lesson, lesson_page


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_a_class_counts_its_students_checks_and_wrong_picks_per_step():
    classes = classroom.Classes()
    cls = classes.open("teacher")
    assert len(cls.code) == 8 and set(cls.code) <= set(classroom.ALPHABET)
    assert classes.open("teacher") is cls  # the teacher's page asks again: the same class
    assert classes.open("another teacher").code != cls.code
    for s in ("s1", "s2", "s3"):
        classes.join(cls.code.lower(), s)  # a code typed in lower case is the same code
        classes.join(cls.code, s)  # joining twice is one student
    classes.checked(cls.code, "s1", 0, True, [])
    classes.checked(cls.code, "s2", 0, False, ["'Hot'"])
    classes.checked(cls.code, "s3", 0, False, ["'Hot'", "'<|bos|>'"])
    classes.checked(cls.code, "s3", 0, True, [])  # a second Check replaces the first
    classes.at(cls.code, "s3", 1)
    said = classes.summary(cls.code, "teacher", len(lesson.STEPS))
    first, second = said["rows"][:2]
    assert said["students"] == 3 and first["checked"] == 3 and abs(first["right"] - 2 / 3) < 1e-9
    assert first["common_wrong"] == ("'Hot'", 1) and first["present"] == 2 and second["present"] == 1
    classes.move(cls.code, "teacher", 4)
    assert classes.where(cls.code, "s1") == (1, 4)


def test_codes_cannot_be_guessed_and_a_guessing_page_is_refused():
    classes = classroom.Classes()
    real = classes.open("teacher").code
    for k in range(classroom.BAD_CODES):
        with pytest.raises(classroom.Refused, match="no class has this code"):
            classes.join("AAAAAAA" + "ABCDEFGH"[k], "script")
    with pytest.raises(classroom.Refused, match="too many wrong class codes"):
        classes.join(real, "script")  # even the right code, now
    for forged in ("", "short", "A" * 9, "ABCD-EFG", "ABCDEFG0", None, 12345678, ["ABCDEFGH"]):
        with pytest.raises(classroom.Refused):
            classes.join(forged, "someone")
    assert classes.join(real, "student")[0] == real


def test_only_the_teacher_moves_the_class_or_reads_its_summary():
    classes = classroom.Classes()
    code = classes.open("teacher").code
    classes.join(code, "student")
    for act in (lambda: classes.move(code, "student", 3), lambda: classes.summary(code, "student", 8)):
        with pytest.raises(classroom.Refused, match="only the teacher"):
            act()
    assert classes.where(code, "student") == (0, 0)


def test_classes_are_bounded_and_end_after_hours_unused(monkeypatch):
    clock = Clock()
    classes = classroom.Classes(clock)
    monkeypatch.setattr(classroom, "MAX_CLASSES", 3)
    monkeypatch.setattr(classroom, "MAX_STUDENTS", 4)
    codes = [classes.open(f"t{k}").code for k in range(3)]
    with pytest.raises(classroom.Refused, match="as many classes as it keeps"):
        classes.open("t3")
    for k in range(4):
        classes.join(codes[0], f"s{k}")
    with pytest.raises(classroom.Refused, match="this class is full"):
        classes.join(codes[0], "s4")
    classes.join(codes[0], "s0")  # a student already in it still is
    clock.t += classroom.PRESENT_S + 1  # s1-s3 leave (a script's sessions that joined once); s0 is still here
    classes.at(codes[0], "s0", 2)
    classes.join(codes[0], "s4")  # the one gone longest made room
    assert set(classes.classes[codes[0]].students) == {"s0", "s2", "s3", "s4"}
    clock.t += 2 * 3600
    classes.join(codes[1], "s9")  # class 1 is used, the others not
    clock.t += classroom.HOURS * 3600 - 3600
    assert classes.open("t3").code not in codes  # classes 0 and 2 ended: room for a new one
    assert codes[1] in classes.classes and codes[0] not in classes.classes and codes[2] not in classes.classes
    with pytest.raises(classroom.Refused, match="no class has this code"):
        classes.join(codes[0], "s0")


# --- The page's handlers -------------------------------------------------------------------------------------

def test_a_student_joins_from_the_link_and_follows_the_teacher(monkeypatch):
    classes = classroom.Classes()
    monkeypatch.setattr(classroom, "CLASSES", classes)
    teacher = as_visitor("teacher", lesson_page.teach_open, "http://school:7860/")
    code = teacher["class-state"]
    assert f"?lesson=sft&amp;class={code}" in teacher["class-link"] and code in teacher["class-code"]
    opened = as_visitor("student", lesson_page.lesson_open, {"lesson": "sft", "class": code})
    assert opened["lesson-class"] == code and opened["lesson-index"] == 0 and "You are in class" in \
        opened["lesson-feedback"]
    form = {"lesson-index": 0, "lesson-class": code, "lesson-moves": opened["lesson-moves"]}
    assert list(as_visitor("student", lesson_page.lesson_follow, form)) == ["lesson-moves"]  # nothing moved
    as_visitor("teacher", lesson_page.teach_move, {"class-state": code, "class-step": lesson_page.step_choices()[4]})
    moved = as_visitor("student", lesson_page.lesson_follow, form)
    assert moved["lesson-index"] == 4 and moved["lesson-moves"] == 1
    form.update({"lesson-index": 2, "lesson-moves": 1})  # the student went back: the class does not pull them again
    assert list(as_visitor("student", lesson_page.lesson_follow, form)) == ["lesson-moves"]
    key = lesson.carrying_loss(lesson_page._lesson_example(0)[1])
    as_visitor("student", lesson_page.lesson_check, {"lesson-index": 0, "lesson-picks": ",".join(map(str, key)),
                                              "lesson-class": code})
    summary = html.unescape(as_visitor("teacher", lesson_page.teach_summary, {"class-state": code})["class-summary"])
    assert "1 student joined" in summary and "the class is at step 5" in summary
    late = as_visitor("late", lesson_page.lesson_open, {"lesson": "sft", "class": code})
    assert late["lesson-index"] == 4  # a student joining now starts where the class is
    assert "points at this computer" not in teacher["class-link"]


@pytest.mark.parametrize("local", ["http://127.0.0.1:7860/", "http://localhost:7860/", "http://[::1]:7860/",
                                   "http://0.0.0.0:7860/"])
def test_a_teacher_who_opened_the_page_at_localhost_is_told_students_cannot_use_that_link(monkeypatch, local):
    monkeypatch.setattr(classroom, "CLASSES", classroom.Classes())
    said = html.unescape(as_visitor("teacher", lesson_page.teach_open, local)["class-link"])
    assert "This link points at this computer" in said and "a student's device cannot open it" in said
    assert lesson_page.on_this_computer_only(local) and not lesson_page.on_this_computer_only("http://10.0.0.5:7860/")


def test_a_student_cannot_move_the_class_or_read_its_summary(monkeypatch):
    classes = classroom.Classes()
    monkeypatch.setattr(classroom, "CLASSES", classes)
    code = as_visitor("teacher", lesson_page.teach_open)["class-state"]
    as_visitor("student", lesson_page.lesson_open, {"lesson": "sft", "class": code})
    for fn, form in ((lesson_page.teach_move, {"class-state": code, "class-step": "3."}),
                     (lesson_page.teach_summary, {"class-state": code})):
        out = as_visitor("student", fn, form)
        assert list(out) == ["class-status"] and "only the teacher" in out["class-status"]
    assert classes.where(code, "student") == (0, 0)


def test_a_teachers_reload_keeps_the_class_by_its_key_and_addresses_open_few():
    classes = classroom.Classes()
    cls = classes.open("page1", address="1.2.3.4")
    classes.join(cls.code, "student")
    assert classes.open("page2", key=cls.key).code == cls.code  # the reload: a new page with the class's key
    classes.move(cls.code, "page2", 2)  # the reloaded page is the teacher now, the old one no longer
    with pytest.raises(classroom.Refused, match="only the teacher"):
        classes.move(cls.code, "page1", 3)
    assert classes.open("page3", key="forged").code != cls.code  # a wrong key: a class of its own
    assert classes.open("page4", key="\u00e9\udcff" * 100).code != cls.code  # any text: never an error
    for k in range(classroom.CLASSES_PER_ADDRESS - 1):  # (page1 was the first)
        classes.open(f"more{k}", address="1.2.3.4")
    with pytest.raises(classroom.Refused, match="classes this hour"):
        classes.open("one too many", address="1.2.3.4")
    assert classes.open("elsewhere", address="5.6.7.8")


def test_a_full_server_gives_up_a_class_nobody_joined_and_an_ended_class_says_so(monkeypatch):
    clock = Clock()
    classes = classroom.Classes(clock)
    monkeypatch.setattr(classroom, "MAX_CLASSES", 2)
    used = classes.open("t0", address="a")
    classes.join(used.code, "student")
    empty = classes.open("t1", address="b")
    with pytest.raises(classroom.Refused, match="as many classes"):
        classes.open("t2", address="c")  # the empty one is new: kept
    clock.t += classroom.EMPTY_S + 1
    assert classes.open("t2", address="c").code not in (used.code, empty.code)
    assert used.code in classes.classes and empty.code not in classes.classes
    clock.t += classroom.HOURS * 3600 + 1
    for _ in range(classroom.BAD_CODES + 2):  # the teacher's page keeps asking: the class ended, in those words
        with pytest.raises(classroom.Refused, match="this class has ended"):
            classes.summary(used.code, "t0", 8)


def test_an_ipv6_host_counts_as_its_whole_64():
    assert classroom.network_of("2001:db8:1:2:aaaa::1") == classroom.network_of("2001:db8:1:2:ffff::9") == \
        "2001:db8:1:2::/64"
    assert classroom.network_of("2001:db8:1:3::1") != classroom.network_of("2001:db8:1:2::1")
    assert classroom.network_of("10.0.0.1") == "10.0.0.1" and classroom.network_of(None) is None
    assert classroom.network_of("::ffff:10.1.1.7") == "10.1.1.7"  # an IPv4 address written as IPv6
    classes = classroom.Classes()
    code = classes.open("teacher").code
    refused = 0
    for k in range(classroom.NEW_STUDENTS_PER_MINUTE + 20):
        try:
            classes.join(code, f"fake{k}", address=f"2001:db8:1:2::{k:x}")  # a new address each time, one /64
        except classroom.Refused:
            refused += 1
    assert refused == 20
