import pytest

from prunekit.evaluation.cross_eval import build_matrix, render_markdown, summarize

PPL = {
    "python": {"python": 10.0, "java": 30.0, "text": 50.0},
    "java": {"python": 12.0, "java": 20.0, "text": 45.0},
    "text": {"python": 14.0, "java": 25.0, "text": 48.0},
}
DENSE = {"python": 8.0, "java": 16.0, "text": 40.0}


def test_matrix_ratios_best_and_diagonal():
    m = build_matrix(PPL, DENSE, 0.5)
    assert m["calibration"] == ["python", "java", "text"] == m["evaluation"]
    assert m["ratio"]["java"]["text"] == pytest.approx(45 / 40)
    assert m["best_calibration"] == {"python": "python", "java": "java", "text": "java"}
    diag = {d["language"]: d for d in m["diagonal"]}
    assert diag["python"]["own_is_best"] and diag["python"]["own_vs_best_other"] == pytest.approx(
        10 / 12 - 1
    )
    assert not diag["text"]["own_is_best"]
    assert diag["text"]["own_rank"] == 2 and diag["text"]["best_calibration"] == "java"


def test_markdown_and_summary_follow_the_numbers():
    m = build_matrix(PPL, DENSE, 0.5)
    md = render_markdown(m)
    assert "**45.000 (1.125×)**" in md and "| dense | 8.000 | 16.000 | 40.000 |" in md
    lines = summarize([m], {})
    assert lines[0].startswith(
        "At sparsity 0.5, the own-language sub-model is the best on its language for 2 of 3"
    )
    assert any(
        line.startswith("- text: NOT best") and "java (45.000 ppl)" in line for line in lines
    )


def test_rows_must_cover_every_evaluation_language():
    with pytest.raises(ValueError):
        build_matrix({"python": {"python": 1.0}}, {"python": 1.0, "java": 2.0}, 0.5)
