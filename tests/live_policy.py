"""Walking a gold trace with a next-token policy that sees only the live context."""

from pencilbench.generators.pencil import Reducer


def assert_policy_reproduces(policy, records):
    """``policy(prompt, live_generated)`` must predict every gold PENCIL token."""
    for record in records:
        prompt = record["prompt"].split()
        reducer = Reducer(prompt)
        for step, token in enumerate(record["pencil"].split()):
            live = list(reducer.generated_live)
            assert policy(prompt, live) == token, (record["id"], step, live)
            reducer.push(token)
