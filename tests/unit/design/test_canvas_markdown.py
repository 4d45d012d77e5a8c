"""Markdown export/import of canvases: exact round trip, and errors that name the line."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.design.canvases.content import empty_content, normalize_content
from workbench.design.canvases.definitions import ARTEFACT_KINDS, CANVASES, CRISP_DM, ML_CANVAS, TASK_STATUSES
from workbench.design.canvases.markdown import (
    BundleMeta,
    CanvasMeta,
    escape_inline,
    export_bundle,
    export_canvas,
    parse_markdown,
    render_document,
    unescape_inline,
)
from workbench.errors import InvalidInput

# Text that stresses the format: Markdown syntax, fences, table pipes, escapes, unicode and
# every kind of whitespace, mixed with arbitrary unicode.
SPECIAL = st.sampled_from(
    [
        "#",
        "## ",
        "# Machine Learning Canvas: x",
        "```",
        "````text",
        "~~~",
        "|",
        "\\",
        "\\n",
        "\\u{41}",
        "`",
        "- Note: x",
        "> ",
        "|---|",
        "*",
        "_",
        "[link](x)",
        "<!-- -->",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        "\u2028",
        "\x85",
        "\x0b",
        "\x00",
        "é",
        "日本語",
        "🙂",
        "\u200b",
        "\ufeff",
    ]
)
TEXT = st.lists(st.one_of(SPECIAL, st.text(max_size=8)), max_size=8).map("".join)
LINE = st.lists(st.one_of(SPECIAL, st.text(max_size=6)), max_size=5).map("".join)


@st.composite
def canvas_content(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    canvas = CANVASES[kind]
    boxes: dict[str, Any] = {}
    for box in canvas.boxes:
        fields: dict[str, Any] = {}
        for spec in box.fields:
            if spec.type == "select":
                fields[spec.id] = draw(st.sampled_from([None, *spec.choices]))
            elif spec.type == "number":
                low = spec.min if spec.min is not None else -1e12
                high = spec.max if spec.max is not None else 1e12
                fields[spec.id] = draw(st.one_of(st.none(), st.floats(low, high, allow_nan=False)))
            else:
                fields[spec.id] = draw(st.one_of(st.none(), LINE))
        boxes[box.id] = {"text": draw(TEXT), "fields": fields}
    return {"boxes": boxes}


@st.composite
def tracker_content(draw: st.DrawFn) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    for task in CRISP_DM.tasks:
        links = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "kind": st.sampled_from(list(ARTEFACT_KINDS)),
                        "ref": LINE.filter(lambda s: s.strip() != ""),
                        "label": LINE,
                    }
                ),
                max_size=2,
            )
        )
        tasks[task.id] = {
            "status": draw(st.sampled_from(TASK_STATUSES)),
            "owner": draw(LINE),
            "notes": draw(TEXT),
            "links": links,
        }
    return {"tasks": tasks}


META = st.builds(
    CanvasMeta,
    project_name=LINE,
    project_slug=st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True),
    revision=st.integers(0, 10_000),
    saved=LINE,
    author=LINE,
    note=LINE,
)


def _round_trip(text: str) -> str:
    return render_document(parse_markdown(text))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["ml_canvas", "mlops_stack"]), data=st.data(), meta=META)
def test_canvas_round_trip_is_exact(kind: str, data: st.DataObject, meta: CanvasMeta) -> None:
    content = data.draw(canvas_content(kind))
    exported = export_canvas(kind, content, meta)
    parsed = parse_markdown(exported)
    assert len(parsed.canvases) == 1
    assert parsed.canvases[0].kind == kind
    assert parsed.canvases[0].meta == meta
    assert parsed.canvases[0].content == normalize_content(kind, content)
    assert render_document(parsed) == exported


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=tracker_content(), meta=META)
def test_tracker_round_trip_is_exact(content: dict[str, Any], meta: CanvasMeta) -> None:
    exported = export_canvas("crisp_dm", content, meta)
    parsed = parse_markdown(exported)
    assert parsed.canvases[0].content == normalize_content("crisp_dm", content)
    assert render_document(parsed) == exported


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ml=canvas_content("ml_canvas"), stack=canvas_content("mlops_stack"), tracker=tracker_content(), name=LINE)
def test_bundle_round_trip_is_exact(
    ml: dict[str, Any], stack: dict[str, Any], tracker: dict[str, Any], name: str
) -> None:
    meta = CanvasMeta(name, "p", 2, "2026-11-27 08:00:00 UTC", "ann", "")
    exported = export_bundle(
        BundleMeta(name, "p", "2026-11-27 09:00:00 UTC"),
        [("ml_canvas", ml, meta), ("mlops_stack", stack, meta), ("crisp_dm", tracker, meta)],
    )
    parsed = parse_markdown(exported)
    assert [c.kind for c in parsed.canvases] == ["ml_canvas", "mlops_stack", "crisp_dm"]
    assert parsed.bundle is not None and parsed.bundle.project_name == name
    assert _round_trip(exported) == exported


@given(value=st.text())
def test_inline_escape_round_trips_any_text(value: str) -> None:
    escaped = escape_inline(value)
    assert "\n" not in escaped and "|" not in escaped.replace("\\|", "")
    assert escaped == escaped.strip()
    assert unescape_inline(escaped, line=1) == value


# --- concrete cases -----------------------------------------------------------------------------


def _meta() -> CanvasMeta:
    return CanvasMeta("Churn | model", "churn", 3, "2026-11-27 08:00:00 UTC", "Ann", "first draft")


def _sample_ml() -> dict[str, Any]:
    content = empty_content("ml_canvas")
    content["boxes"]["value_proposition"]["text"] = "  Keep customers.\n\n```python\nx = 1\n```\n## not a heading\n"
    content["boxes"]["impact_simulation"]["fields"]["primary_metric"] = "f1"
    content["boxes"]["decisions"]["fields"]["decision_threshold"] = 0.35
    return content


def test_export_has_title_metadata_and_sections_in_canvas_order() -> None:
    text = export_canvas("ml_canvas", _sample_ml(), _meta())
    lines = text.split("\n")
    assert lines[0] == "# Machine Learning Canvas: Churn \\| model"
    assert "- Revision: 3" in lines and "- Author: Ann" in lines and "- Saved: 2026-11-27 08:00:00 UTC" in lines
    headings = [line for line in lines if line.startswith("## ") and line.endswith("`)")]
    assert [h.rsplit("(`", 1)[1].rstrip("`)") for h in headings] == [b.id for b in ML_CANVAS.boxes]
    # the answer contains a ``` fence, so the export fences it with four backticks
    assert "````text" in lines
    assert "| Decision threshold | `decision_threshold` | 0.35 |" in lines
    assert "| Primary metric | `primary_metric` | f1 |" in lines


def test_import_reads_back_edited_answers_and_fields() -> None:
    text = export_canvas("ml_canvas", empty_content("ml_canvas"), _meta())
    text = text.replace("> Which inputs", "> (prompts are ignored on import) Which inputs")
    lines = text.split("\n")
    start = lines.index("## Features (`features`)")
    fence_at = next(i for i in range(start, len(lines)) if lines[i] == "```text")
    lines.insert(fence_at + 1, "tenure, plan | price")
    row = lines.index("| Primary metric | `primary_metric` |  |")
    lines[row] = "| Primary metric | `primary_metric` | recall |"
    parsed = parse_markdown("\n".join(lines))
    boxes = parsed.canvases[0].content["boxes"]
    assert boxes["features"]["text"] == "tenure, plan | price"
    assert boxes["impact_simulation"]["fields"]["primary_metric"] == "recall"


def _line_of(text: str, needle: str) -> int:
    return text.split("\n").index(needle) + 1


def test_unknown_section_is_an_error_naming_the_line() -> None:
    text = export_canvas("ml_canvas", _sample_ml(), _meta())
    text += "\n## Budget (`budget`)\n\n```text\nten euros\n```\n"
    line = _line_of(text, "## Budget (`budget`)")
    with pytest.raises(InvalidInput, match=rf"line {line}: unknown section 'budget'"):
        parse_markdown(text)


def test_unclosed_fence_names_its_line() -> None:
    text = export_canvas("ml_canvas", _sample_ml(), _meta())
    lines = text.split("\n")
    closing = max(i for i, line in enumerate(lines) if line == "```")  # the last box's closing fence
    opening = max(i for i, line in enumerate(lines[:closing]) if line == "```text")
    del lines[closing]
    with pytest.raises(InvalidInput, match=rf"line {opening + 1}: the code fence opened here is never closed"):
        parse_markdown("\n".join(lines))


@pytest.mark.parametrize(
    ("needle", "replacement", "message"),
    [
        (
            "| Decision threshold | `decision_threshold` | 0.35 |",
            "| Decision threshold | `decision_threshold` | 1.5 |",
            "must lie in",
        ),
        (
            "| Decision threshold | `decision_threshold` | 0.35 |",
            "| Decision threshold | `decision_threshold` | lots |",
            "must be a number",
        ),
        (
            "| Primary metric | `primary_metric` | f1 |",
            "| Primary metric | `primary_metric` | speed |",
            "must be one of",
        ),
        ("| Primary metric | `primary_metric` | f1 |", "| Primary metric | `speed` | f1 |", "unknown field 'speed'"),
        (
            "| Primary metric | `primary_metric` | f1 |",
            "| Primary metric | `primary_metric` | f1",
            "start and end with '|'",
        ),
        ("| Primary metric | `primary_metric` | f1 |", "| Primary metric | `primary_metric` | f1 | x |", "has 4 cells"),
        (
            "| Primary metric | `primary_metric` | f1 |",
            "| Primary metric | `primary_metric` | f\\q1 |",
            "unknown escape",
        ),
        ("- Revision: 3", "- Revision: three", "Revision must be a whole number"),
        ("- Author: Ann", "- Mood: happy", "unknown metadata 'Mood'"),
        ("## Features (`features`)", "## Features", "ends with its id in backticks"),
        ("## Features (`features`)", "## Features (`value_proposition`)", "appears twice"),
        ("- Note: first draft", "some stray text", "unexpected text 'some stray text'"),
    ],
)
def test_malformed_lines_are_reported_with_their_number(needle: str, replacement: str, message: str) -> None:
    text = export_canvas("ml_canvas", _sample_ml(), _meta())
    line = _line_of(text, needle)
    broken = text.replace(needle, replacement)
    with pytest.raises(InvalidInput) as info:
        parse_markdown(broken)
    assert str(info.value).startswith(f"line {line}:"), str(info.value)
    assert message in str(info.value)


def test_missing_box_is_reported_not_treated_as_empty() -> None:
    text = export_canvas("mlops_stack", empty_content("mlops_stack"), _meta())
    lines = text.split("\n")
    start = lines.index("## 11. Metadata Store (`metadata_store`)")
    broken = "\n".join(lines[:start])
    with pytest.raises(InvalidInput, match="the section for 'metadata_store' is missing"):
        parse_markdown(broken)


def test_unknown_title_and_empty_document() -> None:
    with pytest.raises(InvalidInput, match="line 1: the document is empty"):
        parse_markdown("\n\n")
    with pytest.raises(InvalidInput, match="line 2: unknown document title"):
        parse_markdown("\n# Shopping list: milk\n")


def test_tracker_errors_name_the_line() -> None:
    content = empty_content("crisp_dm")
    content["tasks"]["describe_data"] = {
        "status": "done",
        "owner": "Bo",
        "notes": "see profile",
        "links": [{"kind": "profile", "ref": "job:abc", "label": "Profile | v1"}],
    }
    text = export_canvas("crisp_dm", content, _meta())
    assert "| profile | job:abc | Profile \\| v1 |" in text
    parsed = parse_markdown(text)
    assert parsed.canvases[0].content["tasks"]["describe_data"]["links"][0]["label"] == "Profile | v1"
    line = _line_of(text, "| Status | done |")
    with pytest.raises(InvalidInput, match=rf"line {line}: Status must be one of"):
        parse_markdown(text.replace("| Status | done |", "| Status | finished |"))
    line = _line_of(text, "| profile | job:abc | Profile \\| v1 |")
    with pytest.raises(InvalidInput, match=rf"line {line}: link kind must be one of"):
        parse_markdown(text.replace("| profile | job:abc |", "| gossip | job:abc |"))
    line = _line_of(text, "### Explore the data (`explore_data`)")
    with pytest.raises(InvalidInput, match=rf"line {line}: the task 'describe_data' appears twice"):
        parse_markdown(text.replace("(`explore_data`)", "(`describe_data`)"))


def test_several_canvases_need_the_bundle_header() -> None:
    one = export_canvas("ml_canvas", _sample_ml(), _meta())
    two = export_canvas("mlops_stack", empty_content("mlops_stack"), _meta())
    with pytest.raises(InvalidInput, match="need the bundle header"):
        parse_markdown(one + "\n" + two)


# --- hostile input: oversized, deeply nested, malformed ------------------------------------------


def _tracker_with_links(count: int) -> str:
    text = export_canvas("crisp_dm", empty_content("crisp_dm"), _meta())
    header = "| Link kind | Ref | Label |\n|---|---|---|\n"
    rows = "".join(f"| profile | job:{i:08d} | a link label of some length {i} |\n" for i in range(count))
    return text.replace(header, header + rows, 1)


def test_an_oversized_document_is_refused_up_front() -> None:
    import time

    # 200,000 link rows: every cell is valid, so only a size limit stops one huge revision
    text = _tracker_with_links(200_000)
    assert len(text.encode()) > 9 * 1024 * 1024
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match=r"MB, over the import limit of 8 MB") as info:
        parse_markdown(text)
    assert time.perf_counter() - started < 0.5
    assert "\n" not in str(info.value)
    # a long but reasonable tracker still imports
    tasks = parse_markdown(_tracker_with_links(500)).canvases[0].content["tasks"]
    assert len(tasks["business_objectives"]["links"]) == 500


def test_many_escapes_parse_in_linear_time() -> None:
    import time

    # 1.2 MB of \u{41} escapes in one metadata value: quadratic unescaping took tens of seconds
    text = export_canvas("ml_canvas", _sample_ml(), _meta()).replace(
        "- Note: first draft", "- Note: " + "\\u{41}" * 200_000
    )
    started = time.perf_counter()
    parsed = parse_markdown(text)
    assert time.perf_counter() - started < 2.0
    assert parsed.canvases[0].meta.note == "A" * 200_000


@pytest.mark.parametrize(
    ("needle", "replacement", "message"),
    [
        ("Keep customers.", "Keep \ud800customers.", "lone surrogate (U+D800)"),
        ("- Note: first draft", "- Note: first \\u{dfff} draft", "\\u{dfff} is a lone surrogate"),
    ],
)
def test_lone_surrogates_are_refused_naming_the_line(needle: str, replacement: str, message: str) -> None:
    # a lone surrogate is not a character: stored, it would make every later export fail to encode
    text = export_canvas("ml_canvas", _sample_ml(), _meta())
    line = next(i for i, row in enumerate(text.split("\n"), start=1) if needle in row)
    with pytest.raises(InvalidInput) as info:
        parse_markdown(text.replace(needle, replacement))
    assert str(info.value).startswith(f"line {line}:") and message in str(info.value)


def test_content_with_a_lone_surrogate_is_refused_naming_the_field() -> None:
    content = _sample_ml()
    content["boxes"]["features"]["text"] = "tenure \udc00"
    with pytest.raises(InvalidInput, match=r"features\.text holds a lone surrogate") as info:
        normalize_content("ml_canvas", content)
    assert info.value.field == "features.text"


@pytest.mark.parametrize(
    ("insert", "message"),
    [
        (">" * 100_000 + " deep quote", None),  # a quote is a prompt, ignored wherever it is nested
        ("\n".join("  " * depth + "- item" for depth in range(1_000)), "a metadata line reads '- Key: value'"),
        ("\n".join("#" * depth + " heading" for depth in range(4, 2_000)), "unexpected text '#### heading'"),
        ("# Project bundle: inner\n\n- Project: x\n- Exported: now", "the bundle title must be the first line"),
        ("`" * 50_000 + "text", "is never closed"),
        ("| a |\n" * 50_000, "a table needs a separator row"),
        ("[" * 100_000 + "]" * 100_000, "unexpected text"),
        ("## Budget (`" + "b" * 100_000 + "`)\n\n```text\n```", "unknown section 'bbbb"),
        ("| Field | Id | Value |\n|---|---|---|\n| a | `" + "f" * 100_000 + "` | 1 |", "has no table"),
    ],
)
def test_deeply_nested_and_malformed_input_gives_one_clear_message(insert: str, message: str | None) -> None:
    import time

    text = export_canvas("ml_canvas", _sample_ml(), _meta())
    at = "## Features (`features`)"
    hostile = text.replace(at, insert + "\n\n" + at, 1)
    started = time.perf_counter()
    if message is None:
        assert parse_markdown(hostile).canvases[0].content == parse_markdown(text).canvases[0].content
    else:
        with pytest.raises(InvalidInput) as info:
            parse_markdown(hostile)
        assert message in str(info.value) and str(info.value).startswith("line ")
        assert len(str(info.value)) < 600  # quotes at most a short excerpt of the offending line
    assert time.perf_counter() - started < 2.0
