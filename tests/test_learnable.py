"""Every token of a gold trace follows from the live context at that step.

Each policy here sees only what a PENCIL model sees (the prompt plus the reduced context)
and must predict the next gold token. The policies are written from the token formats
alone, not from the generators, so they catch a trace that depends on erased work or on
a token sequence that reads two ways.
"""

import pytest
from live_policy import assert_policy_reproduces
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.pencil import ANSWER, CALL, RETURN, SEP


def addition_next(prompt: list[str], live: list[str]) -> str:
    text = "".join(prompt[:-1])  # drop "="
    operands = [operand[::-1] for operand in text.split("+")]
    digits = len(operands[0])
    if not live:
        return CALL
    if SEP in live:
        sep = len(live) - 1 - live[::-1].index(SEP)
        call = max(i for i, t in enumerate(live[:sep]) if t == CALL)
        frame, written = live[call:sep], live[sep + 1 :]
        if call == 0:  # the outer frame: reverse the column digits into the final answer
            answer = [ANSWER, *str(int("".join(reversed(frame[1:]))))]
        else:
            column, operand = int(frame[1][1:]), int(frame[2][1:])
            if "+" in frame:
                plus = frame.index("+")
                total = int("".join(frame[3:plus])) + int(frame[plus + 1])
                answer = [CALL, f"@{column}", f"#{operand + 1}", *str(total)]
            else:
                total = int("".join(frame[3:]))
                answer = [str(total % 10)]
                if column + 1 < digits or total // 10:
                    answer += [CALL, f"@{column + 1}", "#1", *str(total // 10)]
        return answer[len(written)] if len(written) < len(answer) else RETURN
    call = max(i for i, t in enumerate(live) if t == CALL)
    frame = live[call:]
    if call == 0:
        return CALL if len(live) == 1 else SEP
    if len(frame) == 1:
        return "@0"
    if len(frame) == 2:
        return "#1"
    if len(frame) == 3:
        return "0"
    column, operand = int(frame[1][1:]), int(frame[2][1:])
    if frame[-1] == "+":
        return operands[operand - 1][column]
    if "+" in frame:
        return SEP
    return "+" if column < digits and operand <= len(operands) else SEP


def phop_next(prompt: list[str], live: list[str]) -> str:
    sequence, hops = prompt[:-2], int(prompt[-1])
    if not live:
        return CALL
    state = [CALL, str(hops), str(len(sequence)), sequence[-1]]
    if len(live) < 4:
        return state[len(live)]
    left, here, symbol = int(live[1]), int(live[2]), live[3]
    if left == 0:
        answer = [ANSWER, symbol]
    else:
        j = max(j for j in range(2, here + 1) if sequence[j - 2] == symbol)
        answer = [CALL, str(left - 1), str(j), sequence[j - 1]]
    written = live[5:]
    if len(live) == 4:
        return SEP
    return answer[len(written)] if len(written) < len(answer) else RETURN


POLICIES = {"addition": addition_next, "phop": phop_next}
SIZES = [
    ("addition", {"operands": 2, "digits": 6}),
    ("addition", {"operands": 13, "digits": 3}),
    ("addition", {"operands": 64, "digits": 2}),
    ("phop", {"alphabet": 2, "length": 20, "hops": 6}),
    ("phop", {"alphabet": 4, "length": 256, "hops": 32}),
]


@pytest.mark.parametrize(("task", "params"), SIZES)
def test_every_token_follows_from_the_live_context(task, params):
    assert_policy_reproduces(POLICIES[task], generate(Spec(task, params, "test", 1), 60))
