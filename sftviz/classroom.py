"""A class following the lesson together: a teacher's code, where each student is, what they answered. No gradio.

The teacher opens /?teach=sft and gets a class: a random code (8 characters of 32: 2^40 codes, too many to guess;
a page that tries wrong codes is also refused after a few, though a script can open new pages) and the students'
link /?lesson=sft&class=CODE. The teacher's browser keeps a secret key of the class (never in the address, which a
projector shows), so a reload keeps the class. A student is their page's session id, nothing else: no account, no name. The teacher
sees, per step, who is there, who pressed Check, the share who got it right and the most common wrong pick, and can
move the class to a step (the students follow, and can still go back).

Everything is in memory and bounded: MAX_CLASSES classes (CLASSES_PER_ADDRESS an hour from one address; a class
nobody joined is given up first when the server is full) of MAX_STUDENTS students each (when full, a student not
seen for PRESENT_S makes room: a script's sessions that joined and left do not keep real students out), one kept
answer per student and step, and a class ends HOURS after it was last used.
"""

import ipaddress
import secrets
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: read aloud or off a projector
CODE_LENGTH = 8
MAX_CLASSES = 500
MAX_STUDENTS = 200
HOURS = 4
BAD_CODES = 5  # wrong codes one page may try, then it is refused (a script with new pages can try more: the 2^40
# codes are the real protection)
NEW_STUDENTS_PER_MINUTE = 60  # per class and address: a script inventing sessions fills no class in a minute
PRESENT_S = 120  # a student seen within this long is counted as present
CLASSES_PER_ADDRESS = 10  # classes one address may open in an hour (a school's teachers share one)
EMPTY_S = 600  # a class nobody joined within this long may be given up for a new one when the server is full
WRONG_KEPT = 6  # wrong picks kept per answer (their names, at most 40 characters each)


class Refused(ValueError):
    """A class code, a step or an action the class cannot take: one line for the page."""


@dataclass
class Student:
    step: int = 0
    seen: float = 0.0
    checks: dict = field(default_factory=dict)  # step -> (right, wrong picks' names): their last Check there


@dataclass
class Class:
    code: str
    teacher: str  # the session that opened it (or reopened it with the key): the one that may move it or read it
    key: str  # the teacher's secret, kept by their browser: it reopens the class (a reload)
    created: float
    used: float
    step: int = 0  # where the teacher moved it
    moves: int = 0  # how many times: a student's page follows each new move once
    students: OrderedDict = field(default_factory=OrderedDict)  # session -> Student
    joins: dict = field(default_factory=dict)  # address -> (minute, new students from it in that minute)


def network_of(address):
    """Whom a per-address limit counts: an IPv4 address, or an IPv6 address's /64 (one host is given a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except (TypeError, ValueError):
        return address
    if ip.version == 6 and ip.ipv4_mapped:  # ::ffff:a.b.c.d is the IPv4 address a.b.c.d
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


def code_of(text):
    """A class code from a page (hostile until checked): the code, upper-cased, or Refused."""
    code = text.strip().upper() if isinstance(text, str) else ""
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        raise Refused(f"a class code is {CODE_LENGTH} letters and digits: ask your teacher for the link")
    return code


class Classes:
    """Every class on this server, under one lock."""

    def __init__(self, clock=time.monotonic):
        self.clock, self.lock = clock, threading.Lock()
        self.classes = OrderedDict()  # code -> Class, least recently used first
        self.teachers = {}  # teacher session -> code
        self.bad = OrderedDict()  # session -> wrong codes tried
        self.opened = OrderedDict()  # address -> (hour, classes it opened in that hour)

    def _expire(self):  # under the lock
        now = self.clock()
        while self.classes:
            code, cls = next(iter(self.classes.items()))
            if now - cls.used < HOURS * 3600:
                break
            del self.classes[code]
            self.teachers.pop(cls.teacher, None)

    def open(self, teacher, key=None, address=None):
        """The teacher's class: the one this page opened before, the one whose secret `key` it holds (a reload), or a
        new one."""
        with self.lock:
            self._expire()
            code = self.teachers.get(teacher)
            if code in self.classes:
                return self._use(code)
            if isinstance(key, str) and key:
                cls = next((c for c in self.classes.values()
                            if secrets.compare_digest(c.key.encode(), key.encode("utf-8", "replace"))), None)
                if cls is not None:
                    self.teachers.pop(cls.teacher, None)
                    cls.teacher, self.teachers[teacher] = teacher, cls.code
                    return self._use(cls.code)
            address = network_of(address)
            hour = int(self.clock() // 3600)
            at, n = self.opened.get(address, (hour, 0))
            n = n if at == hour else 0
            if n >= CLASSES_PER_ADDRESS:
                raise Refused(f"this address opened {n} classes this hour, as many as it may: open /?teach=sft in "
                              f"the browser that opened yours (it keeps your class)")
            if len(self.classes) >= MAX_CLASSES:
                now = self.clock()
                empty = next((c for c in self.classes.values() if not c.students and now - c.created > EMPTY_S), None)
                if empty is None:
                    raise Refused("this server has as many classes as it keeps: try again later")
                del self.classes[empty.code]
                self.teachers.pop(empty.teacher, None)
            self.opened[address] = (hour, n + 1)
            while len(self.opened) > 10_000:
                self.opened.popitem(last=False)
            code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
            while code in self.classes:
                code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
            self.classes[code] = Class(code, teacher, secrets.token_urlsafe(16), self.clock(), self.clock())
            self.teachers[teacher] = code
            return self.classes[code]

    def _use(self, code):  # under the lock
        cls = self.classes[code]
        cls.used = self.clock()
        self.classes.move_to_end(code)
        return cls

    def _find(self, code, session, guessing=True):  # under the lock; guessing: a wrong code counts against the page
        self._expire()
        if guessing and self.bad.get(session, 0) >= BAD_CODES:
            raise Refused("too many wrong class codes from this page: the lesson goes on without a class")
        code = code_of(code)
        if code not in self.classes:
            if not guessing:
                raise Refused("this class has ended (after hours unused): open /?teach=sft for a new one")
            self.bad[session] = self.bad.pop(session, 0) + 1
            while len(self.bad) > 10_000:
                self.bad.popitem(last=False)
            raise Refused("no class has this code (it may have ended): the lesson goes on without a class")
        return self._use(code)

    def join(self, code, session, address=None):
        """The student `session` is in the class (again: joining twice is one student), at the class's step.
        Returns (code, moves, step) as they were when they joined (a move after it is followed)."""
        with self.lock:
            cls = self._find(code, session)
            if session not in cls.students:
                address = network_of(address)
                minute = int(self.clock() // 60)
                at, n = cls.joins.get(address, (minute, 0))
                n = n if at == minute else 0
                if n >= NEW_STUDENTS_PER_MINUTE:
                    raise Refused("too many new students from one address this minute: try again in a minute")
                if len(cls.students) >= MAX_STUDENTS:  # full: the student gone longest makes room, if one is gone
                    gone = min(cls.students, key=lambda s: cls.students[s].seen)
                    if self.clock() - cls.students[gone].seen < PRESENT_S:
                        raise Refused(f"this class is full ({MAX_STUDENTS} students here now): the lesson goes on "
                                      f"without a class")
                    del cls.students[gone]
                cls.joins[address] = (minute, n + 1)
                if len(cls.joins) > MAX_STUDENTS:
                    cls.joins.pop(next(iter(cls.joins)))
                cls.students[session] = Student(seen=self.clock())
            cls.students[session].step = cls.step
            return cls.code, cls.moves, cls.step

    def _student(self, code, session):  # under the lock
        cls = self._find(code, session, guessing=False)
        student = cls.students.get(session)
        if student is None:
            raise Refused("this page has not joined the class: open the class link again")
        student.seen = self.clock()
        return cls, student

    def at(self, code, session, step):
        """The student is at `step` now; returns (the class's moves, its step) for the page to follow."""
        with self.lock:
            cls, student = self._student(code, session)
            student.step = step
            return cls.moves, cls.step

    def checked(self, code, session, step, right, wrong):
        """The student pressed Check at `step`: right or not, and the names of their wrong picks."""
        with self.lock:
            cls, student = self._student(code, session)
            student.step = step
            student.checks[step] = (bool(right), tuple(str(w)[:40] for w in wrong[:WRONG_KEPT]))

    def where(self, code, session):
        """(moves, step) of the class, for a student's page that follows it."""
        with self.lock:
            cls, _ = self._student(code, session)
            return cls.moves, cls.step

    def move(self, code, teacher, step):
        with self.lock:
            cls = self._teachers(code, teacher)
            cls.step, cls.moves = step, cls.moves + 1

    def _teachers(self, code, teacher):  # under the lock
        cls = self._find(code, teacher, guessing=False)
        if cls.teacher != teacher:
            raise Refused("only the teacher who opened this class can do that")
        return cls

    def summary(self, code, teacher, steps):
        """Per step: present, checked, right (share of those who checked) and the most common wrong pick."""
        with self.lock:
            cls = self._teachers(code, teacher)
            now = self.clock()
            rows = []
            for k in range(steps):
                present = sum(s.step == k and now - s.seen < PRESENT_S for s in cls.students.values())
                checks = [s.checks[k] for s in cls.students.values() if k in s.checks]
                wrong = Counter(w for _, picks in checks for w in set(picks))
                rows.append({"step": k, "present": present, "checked": len(checks),
                             "right": sum(r for r, _ in checks) / len(checks) if checks else None,
                             "common_wrong": wrong.most_common(1)[0] if wrong else None})
            return {"students": len(cls.students), "step": cls.step, "rows": rows}


CLASSES = Classes()  # the server's classes
