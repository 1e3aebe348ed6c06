import pytest

from sftviz import data
from sftviz.data import DataError


def test_every_sample_loads_and_maps_to_a_trl_type():
    for name in data.samples():
        rows = data.load(name)
        assert len(rows) >= (2 if name.startswith("lesson_") else 50)  # enough to train on (the lesson's: to read)
        try:
            trl_rows = data.to_trl(rows)
        except data.TRLStops as stop:  # the learner's own shape: TRL stops on it, and each fix reads
            assert name == "quiz_prompt_answer_text" and stop.fixes == ("drop_prompt", "map")
            for fix in stop.fixes:
                assert data.detect(data.to_trl(rows, data.decide(rows[0], columns=fix))) in data.TRL_TYPES
            continue
        assert data.detect(trl_rows) in data.TRL_TYPES


@pytest.mark.parametrize("row,kind", [
    ({"text": "x"}, "language_modeling"),
    ({"prompt": "a", "completion": "b"}, "prompt_completion"),
    ({"messages": [{"role": "user", "content": "a"}]}, "conversational"),
    ({"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "assistant", "content": "b"}]},
     "conversational_prompt_completion"),
    ({"conversations": [{"from": "human", "value": "a"}]}, "sharegpt"),
    ({"instruction": "a", "input": "", "output": "b"}, "alpaca"),
    ({"question": "a", "answer": "b"}, "question_answer"),
    ({"prompt": "a", "answer": "b", "text": "ab"}, "prompt_answer"),
    ({"foo": 1}, "unknown"),
])
def test_detect(row, kind):
    assert data.detect([row]) == kind


def test_alpaca_template_skips_empty_input():
    rows = data.to_trl([{"instruction": "Say hi", "input": "", "output": "Hi"},
                        {"instruction": "Add", "input": "2 and 3", "output": "5"}])
    assert "### Input" not in rows[0]["prompt"] and "### Input:\n2 and 3" in rows[1]["prompt"]
    assert rows[1]["completion"] == "5"


def test_newcomer_table_uses_prompt_and_answer_not_text():
    raw = data.load("quiz_prompt_answer_text")
    rows = data.to_trl(raw, data.decide(raw[0], columns="map"))
    assert set(rows[0]) == {"prompt", "completion"} and rows[0]["completion"].startswith(" ")


def test_edited_template_and_template_errors():
    rows = data.to_trl([{"question": "q?", "answer": "a"}], mapping=data.Mapping("Q={{ question }}", "{{ answer }}!"))
    assert rows == [{"prompt": "Q=q?", "completion": "a!"}]
    with pytest.raises(DataError, match="template error"):
        data.to_trl([{"question": "q", "answer": "a"}], mapping=data.Mapping("{{ question ", "x"))
    with pytest.raises(DataError, match="'questoin' is undefined.*columns: `question`, `answer`"):
        data.to_trl([{"question": "q", "answer": "a"}], mapping=data.Mapping("Q: {{ questoin }}", "{{ answer }}"))


def test_sharegpt_roles_mapped():
    rows = data.to_trl([{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}])
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]


def test_local_formats(tmp_path):
    import json
    rows = [{"prompt": "p", "completion": "c"}] * 3
    (tmp_path / "a.json").write_text(json.dumps(rows))
    import pandas as pd
    pd.DataFrame(rows).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame(rows).to_csv(tmp_path / "a.csv", index=False)
    for ext in ("json", "parquet", "csv"):
        assert data.load(str(tmp_path / f"a.{ext}"), limit=2) == rows[:2]
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        data.load(str(tmp_path / "a.txt"))


def test_hub_loading_code_runs_on_a_local_dataset_dir(tmp_path):
    # load_dataset(<dir>) is the same call as for a Hub id; offline we test it on a local folder.
    (tmp_path / "train.jsonl").write_text('{"text": "hello"}\n{"text": "world"}\n')
    assert data.load(str(tmp_path)) == [{"text": "hello"}, {"text": "world"}]
