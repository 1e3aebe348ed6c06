"""Write the bundled sample datasets in assets/samples/ (deterministic; rerun to regenerate).

The samples are ours, made to show what SFT labels do: long, varied prompts with short answers (so
"whole text" and "answer only" train on very different tokens), answers that must stop (EOS matters),
and a fact mapping small enough that a tiny model learns part of it in a few hundred steps.

    python assets/make_samples.py
"""

import csv
import json
import os
import random

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")

CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Canada", "Ottawa"), ("Norway", "Oslo"), ("Greece", "Athens"),
    ("Chile", "Santiago"), ("India", "New Delhi"), ("Ireland", "Dublin"), ("Poland", "Warsaw"),
    ("Portugal", "Lisbon"), ("Cuba", "Havana"),
]
OPPOSITES = [
    ("hot", "cold"), ("up", "down"), ("big", "small"), ("fast", "slow"), ("open", "closed"), ("light", "dark"),
    ("early", "late"), ("happy", "sad"), ("full", "empty"), ("old", "new"), ("wet", "dry"), ("loud", "quiet"),
]
PREAMBLE = [
    "You are a patient tutor helping a student revise for tomorrow's quiz.",
    "The student has been studying all afternoon and is getting a little tired.",
    "Keep every answer as short as possible: one or two words, then stop.",
    "The classroom is quiet except for the sound of rain on the windows.",
    "Earlier today the class talked about maps, weather and the history of trade routes.",
    "Please do not explain your reasoning; the teacher only wants the answer.",
    "This is practice round three of five, and nobody is keeping score.",
    "Some of the questions are easy and some are tricky, but all have one short answer.",
    "Remember that spelling counts, so write the answer carefully.",
    "A student in the back row asks the next question out loud.",
    "The teacher writes the question on the board in large letters.",
    "After this question there will be a short break for lunch.",
]


def question(rng):
    kind = rng.randrange(3)
    if kind == 0:
        country, city = rng.choice(CAPITALS)
        return f"What is the capital of {country}?", f"{city}."
    if kind == 1:
        word, opp = rng.choice(OPPOSITES)
        return f"What is the opposite of {word}?", f"{opp.capitalize()}."
    a, b = rng.randrange(10), rng.randrange(10)
    return f"What is {a} plus {b}?", f"{a + b}."


def preamble(rng):
    return " ".join(rng.sample(PREAMBLE, rng.randint(2, 4)))


def quiz_prompt_completion(n, rng):
    rows = []
    for _ in range(n):
        q, a = question(rng)
        rows.append({"prompt": f"{preamble(rng)}\nQuestion: {q}\nAnswer:", "completion": f" {a}"})
    return rows


def quiz_chat(n, rng):
    rows = []
    for _ in range(n):
        messages = []
        if rng.random() < 0.5:
            messages.append({"role": "system", "content": preamble(rng)})
        for _turn in range(rng.randint(1, 3)):
            q, a = question(rng)
            messages.append({"role": "user", "content": q})
            messages.append({"role": "assistant", "content": a})
        rows.append({"messages": messages})
    return rows


def quiz_text(n, rng):
    """What a newcomer often feeds TRL: the question and its answer glued into one `text` (so all of it is trained)."""
    rows = []
    for _ in range(n):
        q, a = question(rng)
        rows.append({"text": f"{preamble(rng)}\nQuestion: {q}\nAnswer: {a}"})
    return rows


def quiz_question_answer(n, rng):
    return [dict(zip(("question", "answer"), question(rng))) for _ in range(n)]


# The lesson's examples (sftviz/lesson.py): short enough that every token can be clicked on a phone.
LESSON = {
    "lesson_text": [{"text": "Hot is the opposite of cold."}, {"text": "Up is the opposite of down."},
                    {"text": "Paris is the capital of France."}, {"text": "Two plus two is four."}],
    "lesson_qa": [{"prompt": "Question: What is the capital of France?\nAnswer:", "completion": " Paris."},
                  {"prompt": "Question: What is the opposite of hot?\nAnswer:", "completion": " Cold."},
                  {"prompt": "Question: What is 2 plus 3?\nAnswer:", "completion": " 5."}],
    "lesson_chat": [{"messages": [{"role": "user", "content": "Capital of France?"},
                                  {"role": "assistant", "content": "Paris."},
                                  {"role": "user", "content": "And of Peru?"},
                                  {"role": "assistant", "content": "Lima."}]},
                    {"messages": [{"role": "user", "content": "Opposite of up?"},
                                  {"role": "assistant", "content": "Down."}]}],
    # The bug hunt, with max_length 32: rows 1 and 5 are prompts longer than that (TRL drops them: no answer left),
    # row 3 an answer cut by it (its end and EOS are never trained). The doctor finds all three.
    "lesson_bugs": [
        {"prompt": "Question: What is the capital of Spain?\nAnswer:", "completion": " Madrid."},
        {"prompt": "Read the story first. The class went on a trip to the old harbour, where the boats were painted in "
                   "bright colours and the fishermen were mending their nets. The teacher asked every student to "
                   "remember one thing they saw.\nQuestion: Where did the class go?\nAnswer:",
         "completion": " To the harbour."},
        {"prompt": "Question: What is the opposite of cold?\nAnswer:", "completion": " Hot."},
        {"prompt": "Question: Why do we have seasons?\nAnswer:",
         "completion": " Because the Earth is tilted on its axis, so as it goes around the Sun each half of the planet "
                       "gets more direct sunlight for part of the year and less for the rest."},
        {"prompt": "Question: What is 4 plus 4?\nAnswer:", "completion": " 8."},
        {"prompt": "You are a patient tutor helping a student revise for tomorrow's quiz. Some of the questions are "
                   "easy and some are tricky, but all of them have one short answer that the student should write "
                   "down.\nQuestion: What is the capital of Japan?\nAnswer:", "completion": " Tokyo."}],
}


def write_jsonl(name, rows):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    os.makedirs(HERE, exist_ok=True)
    write_jsonl("quiz_prompt_completion.jsonl", quiz_prompt_completion(400, random.Random(1)))
    write_jsonl("quiz_chat.jsonl", quiz_chat(300, random.Random(2)))
    write_jsonl("quiz_question_answer.jsonl", quiz_question_answer(120, random.Random(3)))
    write_jsonl("quiz_text.jsonl", quiz_text(400, random.Random(5)))
    for name, rows in LESSON.items():
        write_jsonl(f"{name}.jsonl", rows)
    # A newcomer's table: the prompt, the answer, and the two already glued together in `text`.
    rng = random.Random(4)
    with open(os.path.join(HERE, "quiz_prompt_answer_text.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["prompt", "answer", "text"])
        w.writeheader()
        for _ in range(60):
            q, a = question(rng)
            prompt = f"Question: {q}\nAnswer:"
            w.writerow({"prompt": prompt, "answer": f" {a}", "text": f"{prompt} {a}"})


if __name__ == "__main__":
    main()
