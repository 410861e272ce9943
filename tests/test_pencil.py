"""The reduction rule, its faults, replay and training segments."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pencilbench.generators.pencil import (
    CALL,
    FAULTS,
    RETURN,
    SEP,
    SPECIAL_TOKENS,
    ProtocolError,
    Reducer,
    TraceWriter,
    ids_of,
    replay,
    replay_codes,
    segments,
    strip_markers,
    texts_of,
    tokens_of,
)
from pencilbench.generators.task import Ragged


def reduce_literally(prompt, generated):
    """The rule as written: at each [RETURN], find the last [SEP], then the last [CALL]
    before it, and erase from that [CALL] to the [RETURN] except the answer."""
    context = list(prompt)
    for token in generated:
        context.append(token)
        if token != RETURN:
            continue
        live = context[len(prompt):]
        seps = [i for i, t in enumerate(live) if t == SEP]
        if not seps:
            return None
        calls = [i for i, t in enumerate(live) if t == CALL and i < seps[-1]]
        if not calls:
            return None
        live = live[: calls[-1]] + live[seps[-1] + 1 : -1]
        context = list(prompt) + live
    return context[len(prompt):]


def test_simple_frame_keeps_only_the_answer():
    run = replay(["p"], [CALL, "a", "b", SEP, "x", RETURN])
    assert run.final == ("x",)
    assert run.reductions == 1
    assert run.peak_context == 7
    assert run.fault is None


def test_nested_frames_reduce_inside_out():
    tokens = [CALL, "a", CALL, "b", SEP, "y", RETURN, "c", SEP, "z", RETURN, "end"]
    run = replay([], tokens)
    assert run.final == ("z", "end")
    assert run.reductions == 2


def test_tail_call_replaces_a_frame_by_its_summary():
    tokens = [CALL, "s0", "work", SEP, CALL, "s1", RETURN]
    run = replay(["q"], tokens)
    assert run.final == (CALL, "s1")
    # The summary frame is live: a later [SEP] ... [RETURN] closes it.
    run = replay(["q"], tokens + ["more", SEP, "done", RETURN])
    assert run.final == ("done",)
    assert run.reductions == 2


def test_answer_holding_markers_keeps_them_live():
    tokens = [CALL, "t", SEP, "d", CALL, "next", RETURN, "w", SEP, "e", RETURN]
    assert replay([], tokens).final == ("d", "e")


def test_call_after_sep_belongs_to_the_answer():
    # The last [SEP] before [RETURN] is the outer one; the [CALL] after it is in A.
    tokens = [CALL, "t", SEP, "a", CALL, "x", RETURN]
    assert replay([], tokens).final == ("a", CALL, "x")


def test_return_without_sep_is_a_fault_not_an_exception():
    reducer = Reducer(["p"])
    assert reducer.extend([CALL, "a"]) is None
    fault = reducer.push(RETURN)
    assert fault is not None and fault.error is ProtocolError.RETURN_WITHOUT_SEP
    assert fault.position == 2
    # After a fault the reducer keeps appending, without reducing.
    assert reducer.push(SEP) is None
    assert reducer.push(RETURN) is None
    assert reducer.generated_live == [CALL, "a", RETURN, SEP, RETURN]
    assert reducer.fault is fault


def test_sep_outside_a_frame_is_a_fault():
    run = replay(["p"], ["a", SEP, "b", RETURN])
    assert run.fault is not None
    assert run.fault.error is ProtocolError.SEP_OUTSIDE_FRAME
    assert run.fault.position == 1
    assert run.reductions == 0


def test_bare_return_is_a_fault():
    assert replay([], [RETURN]).fault.error is ProtocolError.RETURN_WITHOUT_SEP


def test_prompt_may_not_hold_markers():
    try:
        Reducer(["a", SEP])
    except ValueError as error:
        assert "prompt" in str(error)
    else:
        raise AssertionError("a marker in the prompt was accepted")


def test_the_prompt_is_never_reduced():
    run = replay(["x", "y"], [SEP, RETURN])
    assert run.fault is not None
    assert run.final == (SEP, RETURN)


def test_lengths_trail_shows_each_reduction():
    run = replay(["p"], [CALL, "a", SEP, "b", RETURN, "c"], lengths=True)
    assert run.lengths == (2, 3, 4, 5, 2, 3)  # after each token, reductions applied
    assert run.peak_context == 6  # the [RETURN] itself is in context before it reduces


def test_segments_cover_the_trace_and_train_only_fresh_tokens():
    writer = TraceWriter()
    writer.call("s", "1")
    writer.emit("w")
    writer.tail("s", "2")
    writer.emit("v")
    writer.ret("ans")
    prompt = ["q", "r"]
    cut = segments(prompt, writer.tokens)
    assert [s.loss_start for s in cut] == [2, 5]
    assert cut[0].tokens == ("q", "r", CALL, "s", "1", "w", SEP, CALL, "s", "2", RETURN)
    assert cut[1].tokens == ("q", "r", CALL, "s", "2", "v", SEP, "ans", RETURN)
    fresh = [token for s in cut for token in s.tokens[s.loss_start:]]
    assert fresh == writer.tokens
    assert max(len(s.tokens) for s in cut) == replay(prompt, writer.tokens).peak_context


def test_segments_keep_a_trailing_part_without_return():
    cut = segments(["q"], [CALL, "a", SEP, "b", RETURN, "tail"])
    assert cut[-1].tokens == ("q", "b", "tail")
    assert cut[-1].loss_start == 2


def test_strip_markers():
    assert strip_markers([CALL, "a", SEP, "b", RETURN]) == ["a", "b"]


TOKENS = st.lists(st.sampled_from([CALL, SEP, RETURN, "a", "b", "c"]), max_size=60)


@settings(max_examples=400, deadline=None)
@given(prompt=st.lists(st.sampled_from(["p", "q"]), max_size=4), generated=TOKENS)
def test_incremental_reducer_matches_the_literal_rule(prompt, generated):
    run = replay(prompt, generated)
    literal = reduce_literally(prompt, generated)
    if run.fault is None:
        assert list(run.final) == literal
    else:
        # The literal rule fails at a [RETURN]; a [SEP] with no [CALL] before it is
        # reported earlier by the reducer, where the literal rule may still go on.
        cut = run.fault.position
        prefix = reduce_literally(prompt, generated[:cut])
        assert prefix is not None


@settings(max_examples=300, deadline=None)
@given(generated=TOKENS)
def test_bulk_extend_equals_token_by_token(generated):
    one = Reducer(["p"])
    for token in generated:
        one.push(token)
    bulk = Reducer(["p"])
    bulk.extend(generated)
    assert (one.context, one.peak, one.reductions, one.fault) == (
        bulk.context, bulk.peak, bulk.reductions, bulk.fault)
    assert replay(["p"], generated, lengths=True).peak_context == one.peak


@settings(max_examples=400, deadline=None)
@given(prompt=st.lists(st.sampled_from(["p", "q"]), max_size=4), generated=TOKENS)
def test_compiled_replay_equals_the_incremental_reducer(prompt, generated):
    reducer, trail = Reducer(prompt), []
    for token in generated:
        reducer.push(token)
        trail.append(len(reducer.context))
    run = replay(prompt, generated, lengths=True)
    assert run.final == tuple(reducer.generated_live)
    assert (run.peak_context, run.reductions, run.fault) == (reducer.peak, reducer.reductions, reducer.fault)
    assert run.lengths == tuple(trail)
    vocabulary = (*SPECIAL_TOKENS, "a", "b", "c")
    ids = ids_of(generated, vocabulary)
    kept, peak, reductions, fault, position, _ = replay_codes(ids, len(prompt), False)
    assert tokens_of(ids[kept], vocabulary) == reducer.generated_live
    assert (peak, reductions) == (reducer.peak, reducer.reductions)
    assert (FAULTS[fault], position) == ((reducer.fault.error, reducer.fault.position) if reducer.fault else (None, -1))


def test_vocabulary_ids_round_trip_and_reject_unknown_or_spaced_tokens():
    vocabulary = (*SPECIAL_TOKENS, "x", "y")
    assert tokens_of(ids_of(["y", CALL, "x"], vocabulary), vocabulary) == ["y", CALL, "x"]
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        ids_of(["x", "z"], vocabulary)
    with pytest.raises(ValueError, match="white space"):
        tokens_of(ids_of(["a b"], (*SPECIAL_TOKENS, "a b")), (*SPECIAL_TOKENS, "a b"))
    with pytest.raises(ValueError, match="start with the special tokens"):
        tokens_of(ids_of(["x"], ("x",)), ("x",))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=40), max_size=6))
def test_compiled_join_equals_joining_the_tokens(rows):
    vocabulary = (*SPECIAL_TOKENS, "x", "yz", "ünï")
    ids = [np.array(row, dtype=np.int32) for row in rows]
    assert texts_of(Ragged.of(ids), vocabulary).to_pylist() == [" ".join(tokens_of(row, vocabulary)) for row in ids]
